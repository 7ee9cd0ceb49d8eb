`timescale 1ns/1ps
`default_nettype none
// edgehls_mult: signed multiplier with registered inputs and a registered product.
//
// At each rising edge:
//   a_r <= a;  b_r <= b;  p <= a_r * b_r        (IN_REG = 1)
//   p <= a * b                                  (IN_REG = 0: the caller registers a and b)
// so p equals a * b of the values presented 1 + IN_REG edges earlier. Nothing is reset.
//
// Keeping the multiplier and its three registers in one module lets the ECP5 synthesis flow
// swap this file for hw/ecp5/mult.v, which puts all three registers inside the MULT18X18D
// (Yosys maps an inferred multiply to a combinational MULT18X18D and leaves its registers in
// the fabric, so the routes to and from the DSP and the multiply fell in one cycle).
// Both files define the same module with the same behaviour; tests/hw/test_mult.py simulates
// them side by side.
//
// Parameters:
//   AW     width of a (signed)
//   BW     width of b (signed)
//   IN_REG 1: register a and b here (in the DSP block on ECP5); 0: a and b come from registers
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
        if (IN_REG != 0) begin : g_in_reg
            reg signed [AW-1:0] a_r;
            reg signed [BW-1:0] b_r;
            always @(posedge clk) begin
                a_r <= a;
                b_r <= b;
                p <= a_r * b_r;
            end
        end else begin : g_no_in_reg
            always @(posedge clk) p <= a * b;
        end
    endgenerate
endmodule
`default_nettype wire
