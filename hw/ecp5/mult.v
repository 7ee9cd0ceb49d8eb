`timescale 1ns/1ps
`default_nettype none
// edgehls_mult, ECP5 version: the same module as hw/mult.v (signed multiplier, registered
// product, inputs registered when IN_REG = 1: p = a * b of the values presented 1 + IN_REG
// edges earlier), with its registers inside one MULT18X18D (REG_OUTPUT, and REG_INPUTA/B when
// IN_REG = 1, on CLK0; no pipeline register) when both operands fit 18 bits; wider operands use
// the generic code.
//
// Only `edgehls synth --target ecp5` reads this file (in place of hw/mult.v): Yosys maps an
// inferred multiply to a combinational MULT18X18D and leaves its registers in the fabric, so the
// route into the DSP, the multiply and the route out were one cycle (92 MHz on LFE5U-85F).
// Simulation and the other flows use hw/mult.v; tests/hw/test_mult.py simulates both against
// each other (with a register-accurate MULT18X18D model, tests/hw/ecp5_mult18x18d.v).
//
// Parameters:
//   AW     width of a (signed)
//   BW     width of b (signed)
//   IN_REG 1: register a and b here; 0: a and b come from registers
/* verilator lint_off DECLFILENAME */  // files are named after the block, modules edgehls_*
module edgehls_mult #(
    parameter AW = 9,
    parameter BW = 8,
    parameter IN_REG = 1
) (
    input  wire                    clk,
    input  wire signed [AW-1:0]    a,
    input  wire signed [BW-1:0]    b,
    output reg  signed [AW+BW-1:0] p
);
    generate
        if (AW <= 18 && BW <= 18) begin : g_dsp
            // operands sign-extended to 18 bits; the 36-bit product's low AW+BW bits are exact
            wire [17:0] a_x;
            wire [17:0] b_x;
            if (AW < 18) begin : g_sext_a
                assign a_x = {{(18 - AW){a[AW-1]}}, a};
            end else begin : g_a
                assign a_x = a;
            end
            if (BW < 18) begin : g_sext_b
                assign b_x = {{(18 - BW){b[BW-1]}}, b};
            end else begin : g_b
                assign b_x = b;
            end
            /* verilator lint_off UNUSEDSIGNAL */  // the product's top bits repeat its sign
            wire [35:0] p_x;
            /* verilator lint_on UNUSEDSIGNAL */
            MULT18X18D #(
                .REG_INPUTA_CLK(IN_REG != 0 ? "CLK0" : "NONE"),
                .REG_INPUTB_CLK(IN_REG != 0 ? "CLK0" : "NONE"),
                .REG_OUTPUT_CLK("CLK0"),
                .GSR("DISABLED"),
                .RESETMODE("SYNC")
            ) u_dsp (
                .A0(a_x[0]), .A1(a_x[1]), .A2(a_x[2]), .A3(a_x[3]), .A4(a_x[4]), .A5(a_x[5]),
                .A6(a_x[6]), .A7(a_x[7]), .A8(a_x[8]), .A9(a_x[9]), .A10(a_x[10]), .A11(a_x[11]),
                .A12(a_x[12]), .A13(a_x[13]), .A14(a_x[14]), .A15(a_x[15]), .A16(a_x[16]),
                .A17(a_x[17]),
                .B0(b_x[0]), .B1(b_x[1]), .B2(b_x[2]), .B3(b_x[3]), .B4(b_x[4]), .B5(b_x[5]),
                .B6(b_x[6]), .B7(b_x[7]), .B8(b_x[8]), .B9(b_x[9]), .B10(b_x[10]), .B11(b_x[11]),
                .B12(b_x[12]), .B13(b_x[13]), .B14(b_x[14]), .B15(b_x[15]), .B16(b_x[16]),
                .B17(b_x[17]),
                .P0(p_x[0]), .P1(p_x[1]), .P2(p_x[2]), .P3(p_x[3]), .P4(p_x[4]), .P5(p_x[5]),
                .P6(p_x[6]), .P7(p_x[7]), .P8(p_x[8]), .P9(p_x[9]), .P10(p_x[10]), .P11(p_x[11]),
                .P12(p_x[12]), .P13(p_x[13]), .P14(p_x[14]), .P15(p_x[15]), .P16(p_x[16]),
                .P17(p_x[17]), .P18(p_x[18]), .P19(p_x[19]), .P20(p_x[20]), .P21(p_x[21]),
                .P22(p_x[22]), .P23(p_x[23]), .P24(p_x[24]), .P25(p_x[25]), .P26(p_x[26]),
                .P27(p_x[27]), .P28(p_x[28]), .P29(p_x[29]), .P30(p_x[30]), .P31(p_x[31]),
                .P32(p_x[32]), .P33(p_x[33]), .P34(p_x[34]), .P35(p_x[35]),
                .C0(1'b0), .C1(1'b0), .C2(1'b0), .C3(1'b0), .C4(1'b0), .C5(1'b0), .C6(1'b0),
                .C7(1'b0), .C8(1'b0), .C9(1'b0), .C10(1'b0), .C11(1'b0), .C12(1'b0), .C13(1'b0),
                .C14(1'b0), .C15(1'b0), .C16(1'b0), .C17(1'b0),
                .SIGNEDA(1'b1), .SIGNEDB(1'b1), .SOURCEA(1'b0), .SOURCEB(1'b0),
                .CLK0(clk), .CE0(1'b1), .RST0(1'b0)
            );
            always @(*) p = p_x[AW+BW-1:0];
        end else if (IN_REG != 0) begin : g_fabric
            reg signed [AW-1:0] a_r;
            reg signed [BW-1:0] b_r;
            always @(posedge clk) begin
                a_r <= a;
                b_r <= b;
                p <= a_r * b_r;
            end
        end else begin : g_fabric_no_in_reg
            always @(posedge clk) p <= a * b;
        end
    endgenerate
endmodule
`default_nettype wire
