`timescale 1ns/1ps
`default_nettype none
// edgehls_column: the tail of one array column: accumulator bank, post-processing parameters
// and the requantizer, producing one activation write per finished output.
//
// Parameters:
//   J       this column's index (0..C-1)
//   B       activation buffer banks
//   AW      activation width (abits + 1, signed)
//   ACC_W   accumulator width
//   MDEPTH  accumulator depth (the largest M of any layer)
//   MCW, AAW, BW, CCW, PAW  control field widths (see edgehls_sequencer)
//   MB, SB  requantization multiplier and shift widths
//   PW      post ROM word width: bias[ACC_W] mult[MB] shift[SB] lo[AW] hi[AW], then with NEG
//           mult_n[MB] shift_n[SB], then with tables lut_id[LIW] lut_en, LSB first
//   NEG     1: the word has the negative-side pair (a LeakyRelu somewhere in the model);
//           0: negative accumulators use mult and shift too
//   NLUT    lookup tables (Sigmoid, HardSigmoid, HardSwish) of the model; 0: no table stage
//   LIW     table-select width; LUT_FILE the tables' $readmemh file: table t's entry for the
//           requantized code z is at {t, z[AW-2:0] with bit AW-2 inverted} (2**(AW-1) a table)
//
// Timing: the column's partial sum and its control word arrive together in cycle u. The
// accumulator is read in u and written in u+1; on a tile's `last` pass the sum goes to the
// requantizer in u+1 and its write request leaves in u+7 (edgehls_postproc LAT = 6), or in
// u+8 with tables (one more stage: the table ROM's read, for every layer alike). A step that
// reads the entry the step before it is writing (back to back on the same address: reduce
// mode) takes the sum being written instead of the RAM's stale word (forwarding).
module edgehls_column #(
    parameter integer J = 0,
    parameter integer B = 4,
    parameter integer AW = 9,
    parameter integer ACC_W = 32,
    parameter integer MDEPTH = 4,
    parameter integer MCW = 3,
    parameter integer AAW = 8,
    parameter integer BW = 2,
    parameter integer CCW = 3,
    parameter integer PAW = 4,
    parameter integer MB = 16,
    parameter integer SB = 6,
    parameter integer NEG = 0,
    parameter integer RED = 0,  // 1: forwarding for reduce mode's back-to-back steps on one entry
    parameter integer NLUT = 0,
    parameter integer LIW = 1,
    parameter LUT_FILE = "lut.hex",
    parameter integer PW = ACC_W + MB + SB + 2 * AW + ((NEG > 0) ? MB + SB : 0)
                           + ((NLUT > 0) ? 1 + LIW : 0),
    parameter integer MAW = (MDEPTH > 1) ? $clog2(MDEPTH) : 1
) (
    input  wire             clk,
    input  wire             rst_n,
    input  wire [ACC_W-1:0] psum,
    input  wire             c_valid,
    input  wire             c_clear,
    input  wire             c_last,
    input  wire             c_max,   // max mode (max pooling): keep the maximum, not the sum
    input  wire             c_pv,    // the step's input pixel is inside the map (not padding)
    input  wire [CCW-1:0]   c_mlo,   // max mode: columns [mlo, mhi) take part in this tile
    input  wire [CCW-1:0]   c_mhi,
    input  wire [MCW-1:0]   c_m,
    input  wire [AAW-1:0]   c_waddr,
    input  wire [BW-1:0]    c_wrot,
    input  wire [CCW-1:0]   c_ncols,
    input  wire [PAW-1:0]   c_paddr,
    output wire [PAW-1:0]   prom_addr,
    input  wire [PW-1:0]    prom_data,
    output wire             o_valid,
    output wire [BW-1:0]    o_bank,
    output wire [AAW-1:0]   o_addr,
    output wire [AW-1:0]    o_data
);
    localparam integer AT = BW + AAW;                    // write tag: bank, word
    localparam integer LW = (NLUT > 0) ? 1 + LIW : 0;    // table fields: lut_en, lut_id
    localparam integer TW = AT + LW;

    // which bank and word this column's element goes to: n = nt*C + J, bank = n mod B; the
    // sum wrot + J < 2B, so one conditional subtraction (in BW-bit modular arithmetic) suffices
    localparam [31:0]   J32 = J;
    localparam [31:0]   B32 = B;
    localparam [BW:0]   J_W = J32[BW:0];
    localparam [CCW-1:0] J_C = J32[CCW-1:0];
    localparam [BW:0]   B_W = B32[BW:0];
    wire [BW:0]  bank_sum = {1'b0, c_wrot} + J_W;
    wire         carry = (bank_sum >= B_W);
    wire [BW-1:0] bank = bank_sum[BW-1:0] - (carry ? B_W[BW-1:0] : {BW{1'b0}});
    wire         en = (J < c_ncols);

    reg              a_valid, a_clear, a_last, a_en, a_max, a_act;
    // (MCW counts to MDEPTH inclusive; the RAM decodes MAW bits: the top bit may go unused)
    /* verilator lint_off UNUSEDSIGNAL */
    reg  [MCW-1:0]   a_m;
    /* verilator lint_on UNUSEDSIGNAL */
    reg  [ACC_W-1:0] a_psum;
    reg  [AT-1:0]    a_tag;
    wire [ACC_W-1:0] acc_q;
    reg              f_hit;   // this step's entry is the one the previous step wrote
    reg  [ACC_W-1:0] f_sum;   // and the sum it wrote

    always @(posedge clk) begin
        if (!rst_n) begin
            a_valid <= 1'b0;
            f_hit <= 1'b0;
        end else begin
            a_valid <= c_valid;
            f_hit <= c_valid && a_valid && !a_last && (c_m[MAW-1:0] == a_m[MAW-1:0]);
        end
        f_sum <= sum;
        a_clear <= c_clear;
        a_last <= c_last;
        a_en <= en;
        a_max <= c_max;
        a_act <= c_pv && (J_C >= c_mlo) && (J_C < c_mhi);
        a_m <= c_m;
        a_psum <= psum;
        a_tag <= {bank, c_waddr + {{(AAW - 1){1'b0}}, carry}};
    end

    // sum mode: accumulate. Max mode: the maximum over the steps that take part; a cleared
    // accumulator that has seen none yet holds the most negative value.
    wire [ACC_W-1:0] most_neg = {1'b1, {(ACC_W - 1){1'b0}}};
    wire [ACC_W-1:0] acc_v = (RED != 0 && f_hit) ? f_sum : acc_q;
    wire [ACC_W-1:0] prev = a_clear ? most_neg : acc_v;
    wire [ACC_W-1:0] max_v = (a_act && ($signed(a_psum) > $signed(prev))) ? a_psum : prev;
    wire [ACC_W-1:0] sum = a_max ? max_v : (a_clear ? {ACC_W{1'b0}} : acc_v) + a_psum;

    edgehls_ram_sdp #(.W(ACC_W), .DEPTH(MDEPTH)) u_acc (
        .clk(clk),
        .we(a_valid && !a_last),
        .waddr(a_m[MAW-1:0]),
        .wdata(sum),
        .raddr(c_m[MAW-1:0]),
        .rdata(acc_q)
    );

    assign prom_addr = c_paddr;

    // the table fields are sampled with the other post-processing parameters and travel
    // through the requantizer in its tag
    wire [TW-1:0] post_tag, out_tag;
    wire [MB-1:0] mult_n;
    wire [SB-1:0] shift_n;
    wire          p_valid;
    wire [AW-1:0] p_data;
    generate
        if (NLUT > 0) begin : g_lut_tag
            assign post_tag = {prom_data[PW-1 -: LW], a_tag};
        end else begin : g_tag
            assign post_tag = a_tag;
        end
        if (NEG > 0) begin : g_neg
            assign mult_n = prom_data[ACC_W + MB + SB + 2 * AW +: MB];
            assign shift_n = prom_data[ACC_W + 2 * MB + SB + 2 * AW +: SB];
        end else begin : g_no_neg
            assign mult_n = prom_data[ACC_W +: MB];
            assign shift_n = prom_data[ACC_W + MB +: SB];
        end
    endgenerate

    edgehls_postproc #(.ACC_W(ACC_W), .OUT_W(AW), .MB(MB), .SB(SB), .TW(TW)) u_post (
        .clk(clk),
        .rst_n(rst_n),
        .in_valid(a_valid && a_last && a_en),
        .in_acc(sum),
        .bias(prom_data[0 +: ACC_W]),
        .mult(prom_data[ACC_W +: MB]),
        .shift(prom_data[ACC_W + MB +: SB]),
        .lo(prom_data[ACC_W + MB + SB +: AW]),
        .hi(prom_data[ACC_W + MB + SB + AW +: AW]),
        .mult_n(mult_n),
        .shift_n(shift_n),
        .in_tag(post_tag),
        .out_valid(p_valid),
        .out_data(p_data),
        .out_tag(out_tag)
    );

    wire [AT-1:0] w_tag;
    generate
        if (NLUT > 0) begin : g_lut
            // table stage: the requantized code addresses its layer's table (synchronous ROM);
            // a layer without one passes its code through the same register stage
            localparam integer LAW = LIW + AW - 1;
            wire           lut_en = out_tag[TW-1];
            wire [LIW-1:0] lut_id = out_tag[AT +: LIW];
            wire [LAW-1:0] lut_addr = {lut_id, ~p_data[AW-2], p_data[AW-3:0]};
            wire [AW-1:0]  lut_q;
            reg            d_valid, d_en;
            reg  [AW-1:0]  d_data;
            reg  [AT-1:0]  d_tag;
            edgehls_rom #(.W(AW), .DEPTH(1 << LAW), .FILE(LUT_FILE)) u_lut (
                .clk(clk), .addr(lut_addr), .data(lut_q)
            );
            always @(posedge clk) begin
                if (!rst_n) d_valid <= 1'b0;
                else d_valid <= p_valid;
                d_en <= lut_en;
                d_data <= p_data;
                d_tag <= out_tag[0 +: AT];
            end
            assign o_valid = d_valid;
            assign o_data = d_en ? lut_q : d_data;
            assign w_tag = d_tag;
        end else begin : g_direct
            assign o_valid = p_valid;
            assign o_data = p_data;
            assign w_tag = out_tag;
        end
    endgenerate

    assign o_bank = w_tag[AAW +: BW];
    assign o_addr = w_tag[0 +: AAW];
endmodule
`default_nettype wire
