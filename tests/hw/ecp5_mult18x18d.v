`timescale 1ns/1ps
`default_nettype none
// Simulation model of the Lattice ECP5 MULT18X18D, for tests only: Yosys ships this primitive as
// a black box (cells_bb_ecp5.v), with no simulation model. Written from Lattice TN1267 (ECP5
// sysDSP usage guide) for the subset hw/ecp5/mult.v uses, and it refuses any other setting:
//   P = A * B, 36 bits, each operand signed when SIGNEDA / SIGNEDB is high (18-bit two's
//   complement), else unsigned;
//   REG_INPUTA_CLK, REG_INPUTB_CLK (the A and B input registers), REG_PIPELINE_CLK (after the
//   multiplier) and REG_OUTPUT_CLK (before P): "NONE" bypasses a register, "CLK0" clocks it on
//   CLK0's rising edge, enabled by CE0 and synchronously cleared by RST0 (RESETMODE "SYNC";
//   every *_CE / *_RST parameter must keep its default, CE0 / RST0);
//   the C port, SOURCEA / SOURCEB (shift-chain inputs) must be tied to 0.
/* verilator lint_off DECLFILENAME */  // named after the vendor primitive it models
/* verilator lint_off UNUSEDPARAM */   // GSR: no global set/reset in simulation
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE",
    parameter REG_INPUTB_CLK = "NONE",
    parameter REG_PIPELINE_CLK = "NONE",
    parameter REG_OUTPUT_CLK = "NONE",
    parameter GSR = "ENABLED",
    parameter RESETMODE = "SYNC"
) (
    input  wire A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input  wire B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input  wire C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17,
    input  wire SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input  wire CLK0, CE0, RST0,
    output wire P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
    output wire P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33,
    output wire P34, P35
);
    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9,
                      A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9,
                      B8, B7, B6, B5, B4, B3, B2, B1, B0};
    wire [17:0] c = {C17, C16, C15, C14, C13, C12, C11, C10, C9,
                      C8, C7, C6, C5, C4, C3, C2, C1, C0};

    initial begin
        if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0")
            || (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0")
            || (REG_PIPELINE_CLK != "NONE" && REG_PIPELINE_CLK != "CLK0")
            || (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0") || RESETMODE != "SYNC") begin
            $display("MULT18X18D model: unsupported parameters");
            $finish;
        end
    end

    reg  [17:0] a_q, b_q;
    reg         sa_q, sb_q;
    reg  [35:0] m_q, p_q;
    wire [17:0] a_u = REG_INPUTA_CLK == "NONE" ? a : a_q;
    wire [17:0] b_u = REG_INPUTB_CLK == "NONE" ? b : b_q;
    wire        sa = REG_INPUTA_CLK == "NONE" ? SIGNEDA : sa_q;
    wire        sb = REG_INPUTB_CLK == "NONE" ? SIGNEDB : sb_q;
    wire signed [18:0] a_x = {sa & a_u[17], a_u};
    wire signed [18:0] b_x = {sb & b_u[17], b_u};
    /* verilator lint_off UNUSEDSIGNAL */  // a 19 x 19 product: the top 2 bits repeat the sign
    wire signed [37:0] m_full = a_x * b_x;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [35:0] m = m_full[35:0];
    wire [35:0] m_u = REG_PIPELINE_CLK == "NONE" ? m : m_q;
    wire [35:0] p = REG_OUTPUT_CLK == "NONE" ? m_u : p_q;

    always @(posedge CLK0) begin
        if (RST0) begin
            a_q <= 18'd0;
            b_q <= 18'd0;
            sa_q <= 1'b0;
            sb_q <= 1'b0;
            m_q <= 36'd0;
            p_q <= 36'd0;
        end else if (CE0) begin
            a_q <= a;
            b_q <= b;
            sa_q <= SIGNEDA;
            sb_q <= SIGNEDB;
            m_q <= m;
            p_q <= m_u;
        end
    end

    always @(*) begin
        if (c != 18'd0 || SOURCEA || SOURCEB) begin
            $display("MULT18X18D model: C, SOURCEA and SOURCEB must be tied to 0");
            $finish;
        end
    end

    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
            P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1,
            P0} = p;
endmodule
`default_nettype wire
