`timescale 1ns/1ps
`default_nettype none
// edgehls_sparse_decoder: turns the sparsity-encoded weight ROM (edgehls.encode) back into one
// tile row (C elements of W bits: weights, or codebook indices) per load cycle.
//
// The ROM is one bit stream: the rows of every scheduled tile in schedule order (the order the
// weight loader asks for them, once per inference), concatenated without alignment. Layer l
// stores its elements at its own width w_l <= W (WL; mixed precision: a 4-bit layer of an
// 8-bit array stores 4 bits a weight) and each is sign-extended to W bits on the way out. A
// layer's row is raw (C elements, column j at [j*w_l +: w_l]) or a bitmap (a C-bit mask, then
// the elements of the set columns in column order; a clear column is the layer's ZERO element),
// optionally behind a 1-bit flag (0: the whole row is ZERO and the flag is all it stores). EW,
// the ROM word, is at least the longest row (edgehls.encode sets it to the longest row of the
// stream at the layers' own widths).
//
// Full rate: a row is decoded combinationally from the head of a 3*EW-bit buffer in the cycle
// `load` is high and leaves the buffer at that edge. The buffer is refilled with one ROM word
// per cycle (synchronous ROM: a word addressed in cycle t is appended at the end of t+1)
// whenever it would then hold at most 3*EW bits. With G = buffered + in-flight bits this keeps
// G >= 2*EW after a row leaves, so the buffer alone always holds >= EW bits, a whole row, in a
// load cycle: the decoder never stalls, whatever the rows' lengths (so whatever the layers'
// widths, which only shorten rows) and the load pattern. It
// needs two refill cycles after `restart` before the first load; edgehls_core's first weight
// load is at least four cycles after `start` (input streaming, then `go`), and the top drives
// `restart` with an accepted `start`. So loads keep the timing of a plain ROM and the cycle
// model (edgehls.tiler.cycle_model) is unchanged. A w_l-bit element is read through a W-bit
// window whose bits above w_l may lie past the row (the next row, or the zeros above `fill`):
// the sign extension drops them, so only the row's own bits, all in the buffer, reach `row`.
//
// Parameters:
//   C       elements per row (the array's columns)
//   W       element width out (the array's weight bits, or --share-bits index bits)
//   EW      ROM word width, >= the longest row (1 + C + C*W bounds a bitmap row, C*W a raw one)
//   DEPTH   ROM words
//   CSW     layer-select width; layers 0 .. 2**CSW - 1
//   BITMAP  bit l set: layer l's rows are bitmaps, else raw
//   EMPTY   bit l set: layer l's bitmap rows start with the non-empty flag
//   ZERO    layer l's zero element at [l*W +: W] (0, or the index of 0 in its codebook)
//   WL      layer l's stored element width w_l (1..W) at [l*8 +: 8]; a 0 field means W. With
//           WL = 0 (every layer at W) an element lies at one of C+1 multiples of W, the cheap
//           datapath; otherwise at any bit offset (a wider shifter: ECP5, C = 8, W = 8, EW = 73:
//           6955 LUT4 against 4039)
//   AW      ROM address width (derived)
/* verilator lint_off DECLFILENAME */  // files are named after the block, modules edgehls_*
module edgehls_sparse_decoder #(
    parameter integer C = 4,
    parameter integer W = 8,
    parameter integer EW = 36,
    parameter integer DEPTH = 16,
    parameter integer CSW = 1,
    parameter [(1 << CSW) - 1:0] BITMAP = 1,
    parameter [(1 << CSW) - 1:0] EMPTY = 0,
    parameter [(1 << CSW) * W - 1:0] ZERO = 0,
    parameter [(1 << CSW) * 8 - 1:0] WL = 0,
    parameter integer AW = (DEPTH > 1) ? $clog2(DEPTH) : 1
) (
    input  wire           clk,
    input  wire           rst_n,
    input  wire           restart,
    output wire [AW-1:0]  rom_addr,
    input  wire [EW-1:0]  rom_data,
    input  wire           load,
    input  wire [CSW-1:0] layer,
    output reg  [C*W-1:0] row
);
    localparam integer CAP = 3 * EW;  // the most bits the buffer ever holds
    localparam integer LONG = 1 + C + C * W;  // the widest window a row is decoded from
    localparam integer BW = (CAP > LONG) ? CAP : LONG;  // buffer width
    localparam integer FW = $clog2(BW + 1);  // fill and row-length width
    localparam [31:0] EW32 = EW;
    localparam [31:0] EW2_32 = 2 * EW;
    localparam [31:0] C32 = C;
    localparam [31:0] W32 = W;
    localparam [31:0] LAST32 = DEPTH - 1;

    reg  [BW-1:0]  sbuf;  // bits [fill-1:0] are the stream's next bits, the rest are zero
    reg  [FW-1:0]  fill;
    reg            inflight;
    reg  [AW-1:0]  ptr;

    wire           is_bitmap = BITMAP[layer];
    wire           has_flag = is_bitmap && EMPTY[layer];
    wire           empty = has_flag && !sbuf[0];
    reg  [FW-1:0]  len;
    integer j;
    generate
        if (WL == 0) begin : g_uniform
            // every layer at W: element k of a bitmap row at payload[k*W +: W] (C+1 places)
            localparam integer NW = $clog2(C + 1);
            localparam [31:0] RAW32 = C * W;
            wire [C-1:0]   mask = empty ? {C{1'b0}} : has_flag ? sbuf[1 +: C] : sbuf[0 +: C];
            wire [C*W-1:0] payload = has_flag ? sbuf[C + 1 +: C*W] : sbuf[C +: C*W];
            reg  [NW-1:0]  nnz;
            always @* begin
                nnz = {NW{1'b0}};
                for (j = 0; j < C; j = j + 1) begin
                    if (!is_bitmap) row[j*W +: W] = sbuf[j*W +: W];
                    else if (mask[j]) row[j*W +: W] = payload[nnz*W +: W];
                    else row[j*W +: W] = ZERO[layer*W +: W];
                    nnz = nnz + {{(NW - 1){1'b0}}, mask[j]};
                end
                if (!is_bitmap) len = RAW32[FW-1:0];
                else if (empty) len = {{(FW - 1){1'b0}}, 1'b1};
                else len = C32[FW-1:0] + {{(FW - 1){1'b0}}, has_flag}
                           + {{(FW - NW){1'b0}}, nnz} * W32[FW-1:0];
            end
        end else begin : g_mixed
            // layer l at w_l bits: element k of a row at payload[pos +: W], pos the w_l-bit
            // elements before it (a raw row is a bitmap row whose all-set mask is not stored)
            wire [C-1:0]   mask = !is_bitmap ? {C{1'b1}} : empty ? {C{1'b0}}
                                : has_flag ? sbuf[1 +: C] : sbuf[0 +: C];
            wire [C*W-1:0] payload = !is_bitmap ? sbuf[0 +: C*W]
                                   : has_flag ? sbuf[C + 1 +: C*W] : sbuf[C +: C*W];
            wire [7:0]     wl_field = WL[layer*8 +: 8];
            /* verilator lint_off UNUSEDSIGNAL */  // w_l <= W < 2**FW
            wire [31:0]    wl32 = (wl_field == 8'd0) ? W32 : {24'd0, wl_field};
            /* verilator lint_on UNUSEDSIGNAL */
            wire [FW-1:0]  wl = wl32[FW-1:0];
            reg  [FW-1:0]  pos;
            reg  [W-1:0]   field;
            integer b;
            always @* begin
                pos = {FW{1'b0}};
                for (j = 0; j < C; j = j + 1) begin
                    field = payload[{{(32 - FW){1'b0}}, pos} +: W];
                    // sign-extend the w_l-bit element to W bits (identity when w_l = W)
                    for (b = 1; b < W; b = b + 1)
                        if (b >= wl32) field[b] = field[b - 1];
                    row[j*W +: W] = mask[j] ? field : ZERO[layer*W +: W];
                    if (mask[j]) pos = pos + wl;
                end
                if (empty) len = {{(FW - 1){1'b0}}, 1'b1};
                else if (!is_bitmap) len = pos;
                else len = C32[FW-1:0] + {{(FW - 1){1'b0}}, has_flag} + pos;
            end
        end
    endgenerate

    wire [FW-1:0]  used = load ? len : {FW{1'b0}};
    wire [FW-1:0]  left = fill - used;
    wire [FW-1:0]  fill_n = left + (inflight ? EW32[FW-1:0] : {FW{1'b0}});
    wire           req = (fill_n <= EW2_32[FW-1:0]);
    wire [BW-1:0]  kept = sbuf >> used;
    wire [BW-1:0]  word = {{(BW - EW){1'b0}}, rom_data} << left;

    assign rom_addr = ptr;

    always @(posedge clk) begin
        if (!rst_n || restart) begin
            sbuf <= {BW{1'b0}};
            fill <= {FW{1'b0}};
            inflight <= 1'b0;
            ptr <= {AW{1'b0}};
        end else begin
            sbuf <= inflight ? (kept | word) : kept;
            fill <= fill_n;
            inflight <= req;
            if (req) ptr <= (ptr == LAST32[AW-1:0]) ? {AW{1'b0}} : ptr + 1'b1;
        end
    end
endmodule
`default_nettype wire
