`timescale 1ns/1ps
`default_nettype none
// edgehls_core: the accelerator engine, generic over models. One R x C weight-stationary
// systolic array is time-shared by all layers; the sequencer walks a schedule ROM of weight
// tiles; activations live in two ping-pong buffers of B = lcm(R, C) banks; every column has an
// accumulator bank and a requantizer. The model-specific ROMs sit outside (the generated top).
//
// Parameters:
//   R, C       array rows (dot-product direction K) and columns (output channels N)
//   B          activation banks, lcm(R, C): R consecutive elements read and C consecutive
//              elements written in one cycle never share a bank
//   AW         activation width (abits + 1, signed); WW weight width; ACC_W accumulator width
//   ADEPTH     words per activation bank (every tensor has its region, allocated by
//              edgehls.tiler from tensor lifetimes); MDEPTH accumulator words per column
//   NT         schedule entries; WDEPTH weight ROM words (C*WW bits); PDEPTH post ROM words
//   MB, SB     requantization multiplier and shift widths
//   IN_BITS    input element width; IN_TW its tdata width; IN_M x IN_K the input tensor
//   IN_BASE    the input tensor's first word
//   OUT_TW     output tdata width; OUT_M x OUT_N the output tensor; OUT_BASE its first word
//   CSW        layer-select width (`w_layer` tells a codebook decoder which layer is loading;
//              `w_load` is high in the cycles wrom_data is written into the shadow weights)
//   DW, STW, XAW, SDW, LTW  window-walk widths and the layer-table word (edgehls_sequencer)
//   NEG        1: post words carry a negative-side (mult, shift) pair (LeakyRelu/PRelu)
//   NLUT, LIW, LUT_FILE  table activations (edgehls_column): with NLUT > 0 every column has a
//              table stage, one more cycle of write latency (the sequencer's XLAT)
//   PK         the input is packed (edgehls.tiler.packed_layers), stored flat, element F in
//              bank F mod B at word IN_BASE + F div B; PK_W is the map's width IW (IH =
//              IN_M / IW), PK_LO, PK_HI its pads along the packed axis, which the loader writes
//              as zeros (in cycles that take no stream beat) every run:
//              1: zero padded along w, (ih, iw, c) at F = (ih*(PK_LO+IW+PK_HI) + iw + PK_LO)*IN_K
//                 + c: the loader walks F in stream order, writing the pads as it passes them;
//              2: W-major, zero padded along h, F = (iw*(PK_LO+IH+PK_HI) + ih + PK_LO)*IN_K + c:
//                 the loader first writes zeros over the whole region (IW*IHp*IN_K cycles), then
//                 each beat at its F (a jump per pixel and per row);
//              the sequencer walks the read rotation per step. 0: the input is NHWC, pixel p
//              at word IN_BASE + p * ceil(IN_K / B)
//
// Protocol: `start` (one cycle) -> the core takes IN_M*IN_K elements from s_axis (NHWC order,
// one element a beat; a packed input's pads are written in cycles without a beat) -> runs
// the schedule (`run_cycles` counts these cycles, deterministic) ->
// sends OUT_M*OUT_N elements on m_axis (tlast on the final one) -> pulses `done`.
// `busy` is high from `start` until `done`.
module edgehls_core #(
    parameter integer R = 4,
    parameter integer C = 4,
    parameter integer B = 4,
    parameter integer AW = 9,
    parameter integer WW = 8,
    parameter integer ACC_W = 32,
    parameter integer ADEPTH = 64,
    parameter integer MDEPTH = 1,
    parameter integer NT = 1,
    parameter integer WDEPTH = 4,
    parameter integer PDEPTH = 1,
    parameter integer MB = 16,
    parameter integer SB = 6,
    parameter integer IN_BITS = 8,
    parameter integer IN_TW = 8,
    parameter integer IN_M = 1,
    parameter integer IN_K = 4,
    parameter integer OUT_TW = 8,
    parameter integer OUT_M = 1,
    parameter integer OUT_N = 4,
    parameter integer OUT_BASE = 0,
    parameter integer IN_BASE = 0,
    parameter integer WAW = (WDEPTH > 1) ? $clog2(WDEPTH) : 1,
    parameter integer MCW = $clog2(MDEPTH + 1),
    parameter integer RCW = $clog2(R + 1),
    parameter integer CCW = $clog2(C + 1),
    parameter integer AAW = $clog2(ADEPTH + 1),
    parameter integer BW = (B > 1) ? $clog2(B) : 1,
    parameter integer PAW = (PDEPTH > 1) ? $clog2(PDEPTH) : 1,
    parameter integer CSW = 1,
    parameter integer DW = 4,
    parameter integer STW = 1,
    parameter integer XAW = AAW + 3,
    parameter integer SDW = DW + 2,
    parameter integer PK = 0,  // 1, 2: the input is packed (flat, zero padded along w, h)
    parameter integer PK_W = 1,
    parameter integer PK_LO = 0,
    parameter integer PK_HI = 0,
    parameter integer LTW = 3 * DW + 2 * STW + 2 * XAW + 2 + ((PK != 0) ? 2 * BW : 0),
    parameter integer SW = WAW + MCW + RCW + CCW + 3 + XAW + 2 * AAW + 2 * BW + PAW + CSW
                           + 2 * SDW + 2 * CCW,
    parameter integer SAW = (NT > 1) ? $clog2(NT) : 1,
    parameter integer NEG = 0,
    parameter integer RED = 0,  // 1: some layer runs in reduce mode (a global average pool)
    parameter integer NLUT = 0,
    parameter integer LIW = 1,
    parameter LUT_FILE = "lut.hex",
    parameter integer PW = ACC_W + MB + SB + 2 * AW + ((NEG > 0) ? MB + SB : 0)
                           + ((NLUT > 0) ? 1 + LIW : 0)
) (
    input  wire                clk,
    input  wire                rst_n,
    input  wire                start,
    output wire                busy,
    output reg                 done,
    output wire [31:0]         run_cycles,
    input  wire [IN_TW-1:0]    s_axis_tdata,
    input  wire                s_axis_tvalid,
    output wire                s_axis_tready,
    input  wire                s_axis_tlast,
    output wire [OUT_TW-1:0]   m_axis_tdata,
    output wire                m_axis_tvalid,
    input  wire                m_axis_tready,
    output wire                m_axis_tlast,
    output wire [SAW-1:0]      sched_addr_ld,
    input  wire [SW-1:0]       sched_ld,
    output wire [SAW-1:0]      sched_addr_is,
    input  wire [SW-1:0]       sched_is,
    output wire [CSW-1:0]      ltab_addr,
    input  wire [LTW-1:0]      ltab,
    output wire [WAW-1:0]      wrom_addr,
    input  wire [C*WW-1:0]     wrom_data,
    output wire [CSW-1:0]      w_layer,
    output wire                w_load,
    output wire [C*PAW-1:0]    prom_addr,
    input  wire [C*PW-1:0]     prom_data
);
    localparam [1:0] S_IDLE = 2'd0, S_LOAD = 2'd1, S_RUN = 2'd2, S_STORE = 2'd3;
    localparam integer ABW = (ADEPTH > 1) ? $clog2(ADEPTH) : 1;
    localparam integer IN_W = (IN_K + B - 1) / B;
    localparam integer OUT_W = (OUT_N + B - 1) / B;
    localparam integer RW = (R > 1) ? $clog2(R) : 1;
    localparam integer CTW = 4 + 2 * CCW + MCW + AAW + BW + CCW + PAW;  // control to columns
    localparam [31:0]    IN_BASE32 = IN_BASE;
    localparam [31:0]    OUT_BASE32 = OUT_BASE;
    localparam [31:0]    IN_W32 = IN_W;
    localparam [31:0]    OUT_W32 = OUT_W;
    localparam [31:0]    B32 = B;
    localparam [31:0]    B_LAST32 = B - 1;
    localparam [AAW-1:0] IN_W_A = IN_W32[AAW-1:0];
    localparam [AAW-1:0] OUT_W_A = OUT_W32[AAW-1:0];
    localparam [BW:0]    B_W = B32[BW:0];
    localparam [BW-1:0]  B_LAST = B_LAST32[BW-1:0];
    localparam integer CHAIN = R + C + 3;
    // packed input along w (PK = 1), in elements: left pad, map row, padded row, the whole map
    localparam integer PK_LC = PK_LO * IN_K;
    localparam integer PK_DC = PK_W * IN_K;
    localparam integer PK_RC = (PK_LO + PK_W + PK_HI) * IN_K;
    localparam integer PK_TOTAL = IN_M / PK_W * PK_RC;
    localparam [31:0]  PK_LE = PK_LC - 1;  // the last left pad element (none: never met)
    localparam [31:0]  PK_DE = PK_LC + PK_DC - 1;  // the map row's last element
    // packed along h (PK = 2): a padded column of IHp * IN_K elements, the whole map, the first
    // element (ih 0, iw 0) and the jumps (as word, bank) to the next element (+1), from a
    // pixel's last element to the next pixel's first, from a row's first to the next row's
    localparam integer PH_COL = (PK_LO + IN_M / PK_W + PK_HI) * IN_K;
    localparam integer PH_TOTAL = PK_W * PH_COL;
    localparam [31:0]  PH_START = PK_LO * IN_K;
    localparam [31:0]  PH_PIX = PH_COL - IN_K + 1;
    localparam [31:0]  PH_ROW = IN_K;
    localparam [31:0]  PH_SW32 = PH_START / B, PH_SB32 = PH_START % B;
    localparam [31:0]  PH_1W32 = 1 / B, PH_1B32 = 1 % B;
    localparam [31:0]  PH_PW32 = PH_PIX / B, PH_PB32 = PH_PIX % B;
    localparam [31:0]  PH_RW32 = PH_ROW / B, PH_RB32 = PH_ROW % B;
    localparam [AAW-1:0] PH_SW = PH_SW32[AAW-1:0], PH_1W = PH_1W32[AAW-1:0];
    localparam [AAW-1:0] PH_PW = PH_PW32[AAW-1:0], PH_RW = PH_RW32[AAW-1:0];
    localparam [BW-1:0]  PH_SB = PH_SB32[BW-1:0], PH_1B = PH_1B32[BW-1:0];
    localparam [BW-1:0]  PH_PB = PH_PB32[BW-1:0], PH_RB = PH_RB32[BW-1:0];

    reg [1:0] state;
    assign busy = (state != S_IDLE);

    // ---------------------------------------------------------------- input stream -> buffer 0
    wire              in_valid;
    wire [IN_TW-1:0]  in_data;
    // in_pad: a packed input's next element is a pad column (registered: written as 0 in a
    // cycle that takes no beat)
    reg               in_pad;
    wire              in_padw = (PK != 0) && (state == S_LOAD) && in_pad;
    wire              in_ready = (state == S_LOAD) && !((PK != 0) && in_pad);
    wire              in_fire = in_valid && in_ready;
    wire [AW-1:0]     in_elem = {{(AW - IN_BITS){in_data[IN_BITS-1]}}, in_data[IN_BITS-1:0]};
    reg  [31:0]       in_k, in_count;
    reg  [BW-1:0]     in_bank;
    // the input write is registered (one stage between the stream handshake and the RAM write
    // enables: on ECP5 that handshake-to-RAM path limited Fmax)
    reg               iw_en;
    reg  [BW-1:0]     iw_bank;
    reg  [AAW-1:0]    iw_word;
    reg  [AW-1:0]     iw_elem;
    reg  [AAW-1:0]    in_word, in_rowbase;
    reg  [BW-1:0]     in_rowbank;  // PK = 2: the bank of the current row's first element
    reg  [31:0]       in_c;  // PK = 2: the channel of the next beat

    edgehls_skid_buffer #(.W(IN_TW)) u_in_skid (
        .clk(clk), .rst_n(rst_n),
        .in_valid(s_axis_tvalid), .in_ready(s_axis_tready), .in_data(s_axis_tdata),
        .out_valid(in_valid), .out_ready(in_ready), .out_data(in_data)
    );

    // ---------------------------------------------------------------- sequencer
    reg              go;
    wire             finished;
    wire [RW-1:0]    w_row;
    wire             st_valid, st_first, st_clear, st_last, st_pvalid, st_max;
    wire [CCW-1:0]   st_mlo, st_mhi;
    wire [MCW-1:0]   st_m;
    wire [RCW-1:0]   st_k_rows;
    wire [CCW-1:0]   st_n_cols;
    wire [AAW-1:0]   st_rd_addr, st_wr_addr;
    wire [BW-1:0]    st_rd_rot, st_wr_rot;
    wire [PAW-1:0]   st_p_addr;

    edgehls_sequencer #(
        .R(R), .C(C), .NT(NT), .WAW(WAW), .MCW(MCW), .RCW(RCW), .CCW(CCW), .AAW(AAW),
        .BW(BW), .PAW(PAW), .CSW(CSW), .XAW(XAW), .DW(DW), .SDW(SDW), .STW(STW), .LTW(LTW),
        .XLAT((NLUT > 0) ? 1 : 0), .RED(RED), .B(B), .PK(PK)
    ) u_seq (
        .clk(clk), .rst_n(rst_n), .go(go), .finished(finished), .cycles(run_cycles),
        .sched_addr_ld(sched_addr_ld), .sched_ld(sched_ld),
        .sched_addr_is(sched_addr_is), .sched_is(sched_is),
        .ltab_addr(ltab_addr), .ltab(ltab),
        .wrom_addr(wrom_addr), .w_load(w_load), .w_row(w_row), .w_layer(w_layer),
        .st_valid(st_valid), .st_first(st_first), .st_clear(st_clear), .st_last(st_last),
        .st_m(st_m), .st_k_rows(st_k_rows), .st_n_cols(st_n_cols),
        .st_rd_addr(st_rd_addr), .st_pvalid(st_pvalid), .st_max(st_max),
        .st_mlo(st_mlo), .st_mhi(st_mhi), .st_rd_rot(st_rd_rot), .st_wr_addr(st_wr_addr),
        .st_wr_rot(st_wr_rot), .st_p_addr(st_p_addr)
    );

    // ---------------------------------------------------------------- output reader
    reg  [31:0]     out_n, out_left;
    reg  [BW-1:0]   out_bank, out_bank_d;
    reg  [AAW-1:0]  out_word, out_rowbase;
    reg             rd_req_d, rd_last_d;
    // out_more = (out_left != 0), out_row_end = (out_n == OUT_N - 1), registered beside the
    // counters so that rd_req, which enables every output counter, is not behind their compares
    reg             out_more, out_row_end;
    wire [2:0]      fifo_count;
    wire            rd_req = (state == S_STORE) && out_more
                             && ({1'b0, fifo_count} + {3'b0, rd_req_d} < 4'd4);
    wire [AW-1:0]   out_elem;
    wire            out_pop = m_axis_tvalid && m_axis_tready;

    // ---------------------------------------------------------------- activation buffers
    wire [AW-1:0] rd_a [0:B-1];
    wire          col_valid [0:C-1];
    wire [BW-1:0] col_bank [0:C-1];
    wire [AAW-1:0] col_addr [0:C-1];
    wire [AW-1:0] col_data [0:C-1];

    genvar gb;
    generate
            for (gb = 0; gb < B; gb = gb + 1) begin : g_bank
                localparam [31:0] GB32 = gb;
                reg           we;
                // addresses carry AAW bits (a stride may equal ADEPTH); the RAM decodes ABW
                /* verilator lint_off UNUSEDSIGNAL */
                reg [AAW-1:0] wa;
                reg [AW-1:0]  wd;
                integer j;
                always @* begin
                    we = 1'b0;
                    wa = iw_word;
                    wd = iw_elem;
                    if (iw_en && iw_bank == GB32[BW-1:0]) we = 1'b1;
                    for (j = 0; j < C; j = j + 1) begin
                        if (col_valid[j] && col_bank[j] == GB32[BW-1:0]) begin
                            we = 1'b1;
                            wa = col_addr[j];
                            wd = col_data[j];
                        end
                    end
                end
                // bank gb holds the next word's element when it lies before the rotation
                wire carry;
                if (gb == (1 << BW) - 1) begin : g_top
                    assign carry = 1'b0;  // rot < B <= 2^BW: no bank index lies past it
                end else begin : g_cmp
                    assign carry = (st_rd_rot > GB32[BW-1:0]);
                end
                wire [AAW-1:0] ra = (state == S_STORE) ? out_word
                                  : st_rd_addr + {{(AAW - 1){1'b0}}, carry};
                /* verilator lint_on UNUSEDSIGNAL */
                wire [AW-1:0] rd;
                edgehls_ram_sdp #(.W(AW), .DEPTH(ADEPTH)) u_ram (
                    .clk(clk), .we(we), .waddr(wa[ABW-1:0]), .wdata(wd),
                    .raddr(ra[ABW-1:0]), .rdata(rd)
                );
                assign rd_a[gb] = rd;
            end
    endgenerate

    // ---------------------------------------------------------------- step -> array rows
    reg            p1_valid, p1_first, p1_pvalid;
    reg [BW-1:0]   p1_rot;
    reg [RCW-1:0]  p1_krows;
    reg            xv_valid, xv_first;
    reg [AW-1:0]   xv [0:R-1];

    always @(posedge clk) begin
        if (!rst_n) begin
            p1_valid <= 1'b0;
            xv_valid <= 1'b0;
        end else begin
            p1_valid <= st_valid;
            xv_valid <= p1_valid;
        end
        p1_first <= st_first;
        p1_pvalid <= st_pvalid;
        p1_rot <= st_rd_rot;
        p1_krows <= st_k_rows;
        xv_first <= p1_first;
    end

    // row i takes bank (rot + i) mod B; rows past the tile's K edge, and every row of a
    // padding pixel, get 0
    genvar gi;
    generate
        for (gi = 0; gi < R; gi = gi + 1) begin : g_rot
            localparam [31:0] I32 = gi;
            localparam [BW:0] I_W = I32[BW:0];
            wire [BW:0]   sel_sum = {1'b0, p1_rot} + I_W;
            wire [BW-1:0] sel = sel_sum[BW-1:0] - ((sel_sum >= B_W) ? B_W[BW-1:0] : {BW{1'b0}});
            reg  [AW-1:0] pick;
            integer b;
            always @* begin
                pick = {AW{1'b0}};
                for (b = 0; b < B; b = b + 1)
                    if (sel == b[BW-1:0]) pick = rd_a[b];
            end
            always @(posedge clk) xv[gi] <= (p1_pvalid && gi < p1_krows) ? pick : {AW{1'b0}};
        end
    endgenerate

    // input skew: row i is delayed by i cycles
    wire [R-1:0]    arr_valid, arr_first;
    wire [R*AW-1:0] arr_data;
    generate
        for (gi = 0; gi < R; gi = gi + 1) begin : g_skew
            if (gi == 0) begin : g_direct
                assign arr_valid[0] = xv_valid;
                assign arr_first[0] = xv_first;
                assign arr_data[0 +: AW] = xv[0];
            end else begin : g_delay
                reg          v [0:gi-1];
                reg          f [0:gi-1];
                reg [AW-1:0] d [0:gi-1];
                integer k;
                always @(posedge clk) begin
                    if (!rst_n) begin
                        for (k = 0; k < gi; k = k + 1) v[k] <= 1'b0;
                    end else begin
                        v[0] <= xv_valid;
                        for (k = 1; k < gi; k = k + 1) v[k] <= v[k-1];
                    end
                    f[0] <= xv_first;
                    d[0] <= xv[gi];
                    for (k = 1; k < gi; k = k + 1) begin
                        f[k] <= f[k-1];
                        d[k] <= d[k-1];
                    end
                end
                assign arr_valid[gi] = v[gi-1];
                assign arr_first[gi] = f[gi-1];
                assign arr_data[gi*AW +: AW] = d[gi-1];
            end
        end
    endgenerate

    wire [C*ACC_W-1:0] psum;
    edgehls_systolic_array #(.R(R), .C(C), .AW(AW), .WW(WW), .ACC_W(ACC_W)) u_array (
        .clk(clk), .rst_n(rst_n),
        .in_valid(arr_valid), .in_first(arr_first), .in_data(arr_data),
        .w_load(w_load), .w_row(w_row), .w_data(wrom_data),
        .out_psum(psum)
    );

    // ---------------------------------------------------------------- control to the columns
    // The control word of a step reaches column j together with the step's partial sum:
    // issue cycle t -> array row 0 at t+2 -> bottom of column j at t+4+R+j.
    reg [CTW-1:0] chain [0:CHAIN-1];
    reg           chain_v [0:CHAIN-1];
    integer ci;
    always @(posedge clk) begin
        if (!rst_n) begin
            for (ci = 0; ci < CHAIN; ci = ci + 1) chain_v[ci] <= 1'b0;
        end else begin
            chain_v[0] <= st_valid;
            for (ci = 1; ci < CHAIN; ci = ci + 1) chain_v[ci] <= chain_v[ci-1];
        end
        chain[0] <= {st_clear, st_last, st_max, st_pvalid, st_mlo, st_mhi, st_m,
                     st_wr_addr, st_wr_rot, st_n_cols, st_p_addr};
        for (ci = 1; ci < CHAIN; ci = ci + 1) chain[ci] <= chain[ci-1];
    end

    genvar gj;
    generate
        for (gj = 0; gj < C; gj = gj + 1) begin : g_col
            wire [CTW-1:0] cw = chain[3 + R + gj];
            edgehls_column #(
                .J(gj), .B(B), .AW(AW), .ACC_W(ACC_W), .MDEPTH(MDEPTH), .MCW(MCW),
                .AAW(AAW), .BW(BW), .CCW(CCW), .PAW(PAW), .MB(MB), .SB(SB), .PW(PW),
                .NEG(NEG), .NLUT(NLUT), .LIW(LIW), .LUT_FILE(LUT_FILE), .RED(RED)
            ) u_col (
                .clk(clk), .rst_n(rst_n),
                .psum(psum[gj*ACC_W +: ACC_W]),
                .c_valid(chain_v[3 + R + gj]),
                .c_clear(cw[CTW-1]),
                .c_last(cw[CTW-2]),
                .c_max(cw[CTW-3]),
                .c_pv(cw[CTW-4]),
                .c_mlo(cw[MCW + AAW + BW + CCW + PAW + CCW +: CCW]),
                .c_mhi(cw[MCW + AAW + BW + CCW + PAW +: CCW]),
                .c_m(cw[AAW + BW + CCW + PAW +: MCW]),
                .c_waddr(cw[BW + CCW + PAW +: AAW]),
                .c_wrot(cw[CCW + PAW +: BW]),
                .c_ncols(cw[PAW +: CCW]),
                .c_paddr(cw[0 +: PAW]),
                .prom_addr(prom_addr[gj*PAW +: PAW]),
                .prom_data(prom_data[gj*PW +: PW]),
                .o_valid(col_valid[gj]),
                .o_bank(col_bank[gj]),
                .o_addr(col_addr[gj]),
                .o_data(col_data[gj])
            );
        end
    endgenerate

    // ---------------------------------------------------------------- output stream
    reg [AW-1:0] out_pick;
    integer ob;
    always @* begin
        out_pick = {AW{1'b0}};
        for (ob = 0; ob < B; ob = ob + 1)
            if (out_bank_d == ob[BW-1:0]) out_pick = rd_a[ob];
    end
    wire [AW:0] fifo_head;
    wire [AW-1:0] head = fifo_head[AW-1:0];
    assign out_elem = out_pick;
    // tdata is the FIFO head (what m_axis_tvalid qualifies), sign-extended or truncated
    generate
        if (OUT_TW > AW) begin : g_out_ext
            assign m_axis_tdata = {{(OUT_TW - AW){head[AW-1]}}, head};
        end else if (OUT_TW == AW) begin : g_out_same
            assign m_axis_tdata = head;
        end else begin : g_out_trunc
            // the value fits OUT_TW bits (abits, signed or unsigned); the top bit is a copy
            /* verilator lint_off UNUSEDSIGNAL */
            wire [AW-1:0] unused_top = head;
            /* verilator lint_on UNUSEDSIGNAL */
            assign m_axis_tdata = head[OUT_TW-1:0];
        end
    endgenerate
    edgehls_fifo #(.W(AW + 1), .DEPTH(4)) u_out_fifo (
        .clk(clk), .rst_n(rst_n),
        .in_valid(rd_req_d), .in_data({rd_last_d, out_elem}),
        .out_valid(m_axis_tvalid), .out_ready(m_axis_tready), .out_data(fifo_head),
        .count(fifo_count)
    );
    assign m_axis_tlast = fifo_head[AW];

    always @(posedge clk) begin
        if (!rst_n) iw_en <= 1'b0;
        else iw_en <= in_fire || in_padw;
        iw_bank <= in_bank;
        iw_word <= in_word;
        iw_elem <= in_padw ? {AW{1'b0}} : in_elem;
    end

    // (word, bank) of flat element F + J from those of F, J = jw * B + jb (jb < B)
    function [AAW+BW-1:0] jump(input [AAW-1:0] w, input [BW-1:0] b, input [AAW-1:0] jw,
                               input [BW-1:0] jb);
        reg [BW:0] sum;
        begin
            sum = {1'b0, b} + {1'b0, jb};
            if (sum >= B_W) jump = {w + jw + 1'b1, sum[BW-1:0] - B_W[BW-1:0]};
            else jump = {w + jw, sum[BW-1:0]};
        end
    endfunction

    // ---------------------------------------------------------------- control FSM
    always @(posedge clk) begin
        if (!rst_n) begin
            state <= S_IDLE;
            done <= 1'b0;
            go <= 1'b0;
            rd_req_d <= 1'b0;
        end else begin
            done <= 1'b0;
            go <= 1'b0;
            rd_req_d <= rd_req;
            rd_last_d <= (out_left == 32'd1);
            out_bank_d <= out_bank;
            case (state)
                S_IDLE: if (start) begin
                    state <= S_LOAD;
                    in_k <= 32'd0;
                    in_count <= 32'd0;
                    in_bank <= {BW{1'b0}};
                    in_word <= IN_BASE32[AAW-1:0];
                    in_rowbase <= IN_BASE32[AAW-1:0];
                    in_pad <= (PK == 2) || ((PK == 1) && (PK_LC != 0));
                end
                S_LOAD: if (PK == 2) begin
                    if (in_pad) begin
                        // zeros over the whole region, one element a cycle
                        {in_word, in_bank} <= jump(in_word, in_bank, PH_1W, PH_1B);
                        in_count <= in_count + 32'd1;
                        if (in_count == PH_TOTAL - 1) begin
                            in_pad <= 1'b0;
                            in_count <= 32'd0;
                            in_c <= 32'd0;
                            in_k <= 32'd0;
                            in_word <= IN_BASE32[AAW-1:0] + PH_SW;
                            in_bank <= PH_SB;
                            in_rowbase <= IN_BASE32[AAW-1:0] + PH_SW;
                            in_rowbank <= PH_SB;
                        end
                    end else if (in_fire) begin
                        // the beat (ih, iw, c) at F = (iw * IHp + ih + PK_LO) * IN_K + c
                        in_count <= in_count + 32'd1;
                        if (in_c == IN_K - 1) begin
                            in_c <= 32'd0;
                            if (in_k == PK_W - 1) begin
                                in_k <= 32'd0;
                                {in_word, in_bank} <= jump(in_rowbase, in_rowbank, PH_RW, PH_RB);
                                {in_rowbase, in_rowbank} <= jump(in_rowbase, in_rowbank, PH_RW,
                                                                 PH_RB);
                            end else begin
                                in_k <= in_k + 32'd1;
                                {in_word, in_bank} <= jump(in_word, in_bank, PH_PW, PH_PB);
                            end
                        end else begin
                            in_c <= in_c + 32'd1;
                            {in_word, in_bank} <= jump(in_word, in_bank, PH_1W, PH_1B);
                        end
                        if (in_count == IN_M * IN_K - 1) begin
                            state <= S_RUN;
                            go <= 1'b1;
                        end
                    end
                end else if (PK == 1) begin
                    // packed: one element a cycle along the flat padded order, a beat or a pad
                    if (in_fire || in_pad) begin
                        in_count <= in_count + 32'd1;
                        {in_word, in_bank} <= jump(in_word, in_bank, PH_1W, PH_1B);
                        if (in_k == PK_RC - 1) begin
                            in_k <= 32'd0;
                            in_pad <= (PK_LC != 0);
                        end else begin
                            in_k <= in_k + 32'd1;
                            if (in_k == PK_LE) in_pad <= 1'b0;  // the map row starts
                            if (in_k == PK_DE) in_pad <= 1'b1;  // the right pad starts
                        end
                        if (in_count == PK_TOTAL - 1) begin
                            state <= S_RUN;
                            go <= 1'b1;
                        end
                    end
                end else if (in_fire) begin
                    in_count <= in_count + 32'd1;
                    if (in_k == IN_K - 1) begin
                        in_k <= 32'd0;
                        in_bank <= {BW{1'b0}};
                        in_rowbase <= in_rowbase + IN_W_A;
                        in_word <= in_rowbase + IN_W_A;
                    end else begin
                        in_k <= in_k + 32'd1;
                        if (in_bank == B_LAST) begin
                            in_bank <= {BW{1'b0}};
                            in_word <= in_word + 1'b1;
                        end else begin
                            in_bank <= in_bank + 1'b1;
                        end
                    end
                    if (in_count == IN_M * IN_K - 1) begin
                        state <= S_RUN;
                        go <= 1'b1;
                    end
                end
                S_RUN: if (finished) begin
                    state <= S_STORE;
                    out_n <= 32'd0;
                    out_left <= OUT_M * OUT_N;
                    out_more <= (OUT_M * OUT_N != 0);
                    out_row_end <= (OUT_N == 1);
                    out_bank <= {BW{1'b0}};
                    out_word <= OUT_BASE32[AAW-1:0];
                    out_rowbase <= OUT_BASE32[AAW-1:0];
                end
                S_STORE: begin
                    if (rd_req) begin
                        out_left <= out_left - 32'd1;
                        out_more <= (out_left != 32'd1);
                        out_row_end <= out_row_end ? (OUT_N == 1) : (out_n == OUT_N - 2);
                        if (out_row_end) begin
                            out_n <= 32'd0;
                            out_bank <= {BW{1'b0}};
                            out_rowbase <= out_rowbase + OUT_W_A;
                            out_word <= out_rowbase + OUT_W_A;
                        end else begin
                            out_n <= out_n + 32'd1;
                            if (out_bank == B_LAST) begin
                                out_bank <= {BW{1'b0}};
                                out_word <= out_word + 1'b1;
                            end else begin
                                out_bank <= out_bank + 1'b1;
                            end
                        end
                    end
                    if (out_pop && m_axis_tlast) begin
                        state <= S_IDLE;
                        done <= 1'b1;
                    end
                end
                default: state <= S_IDLE;
            endcase
        end
    end

    wire unused_ok = &{1'b0, s_axis_tlast, st_first, 1'b0};
endmodule
`default_nettype wire
