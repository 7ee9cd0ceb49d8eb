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
//   PW      post ROM word width: bias[ACC_W] mult[MB] shift[SB] lo[AW] hi[AW] mult_n[MB]
//           shift_n[SB], LSB first
//
// Timing: the column's partial sum and its control word arrive together in cycle u. The
// accumulator is read in u and written in u+1; on a tile's `last` pass the sum goes to the
// requantizer in u+1 and its write request leaves in u+7 (edgehls_postproc LAT = 6).
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
    parameter integer PW = ACC_W + 2 * MB + 2 * SB + 2 * AW,
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
    localparam integer TW = BW + AAW;

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
    reg  [MCW-1:0]   a_m;
    reg  [ACC_W-1:0] a_psum;
    reg  [TW-1:0]    a_tag;
    wire [ACC_W-1:0] acc_q;

    always @(posedge clk) begin
        if (!rst_n) begin
            a_valid <= 1'b0;
        end else begin
            a_valid <= c_valid;
        end
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
    wire [ACC_W-1:0] prev = a_clear ? most_neg : acc_q;
    wire [ACC_W-1:0] max_v = (a_act && ($signed(a_psum) > $signed(prev))) ? a_psum : prev;
    wire [ACC_W-1:0] sum = a_max ? max_v : (a_clear ? {ACC_W{1'b0}} : acc_q) + a_psum;

    edgehls_ram_sdp #(.W(ACC_W), .DEPTH(MDEPTH)) u_acc (
        .clk(clk),
        .we(a_valid && !a_last),
        .waddr(a_m[MAW-1:0]),
        .wdata(sum),
        .raddr(c_m[MAW-1:0]),
        .rdata(acc_q)
    );

    assign prom_addr = c_paddr;

    wire [TW-1:0] out_tag;
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
        .mult_n(prom_data[ACC_W + MB + SB + 2 * AW +: MB]),
        .shift_n(prom_data[ACC_W + 2 * MB + SB + 2 * AW +: SB]),
        .in_tag(a_tag),
        .out_valid(o_valid),
        .out_data(o_data),
        .out_tag(out_tag)
    );

    assign o_bank = out_tag[AAW +: BW];
    assign o_addr = out_tag[0 +: AAW];
endmodule
`default_nettype wire
