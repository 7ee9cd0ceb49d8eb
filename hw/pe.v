`timescale 1ns/1ps
`default_nettype none
// edgehls_pe: one processing element of the weight-stationary systolic MAC array.
//
// Activations flow left to right (registered copy to the right neighbour), partial sums flow top
// to bottom (registered), the weight stays. The weight is double-buffered: `w_load` writes the
// shadow register while the array computes with the active one; the step that carries `a_first`
// (the first step of a tile) both uses the shadow weight and makes it active, so consecutive
// tiles stream back to back with no bubble.
//
// An invalid step carries a_in = 0 (edgehls_systolic_array zeroes it where it enters the row,
// and a_o forwards it), so its product is 0 and the PE needs no valid flag of its own.
//
// At each rising edge:
//   a_o, a_first_o <= a_in, a_first
//   term  <= a_in * w_use two edges later          w_use = a_first ? w_shadow : w_active
//            (edgehls_mult: the multiplier's inputs and its product are registered)
//   p_o   <= p_in + term
//   w_active <= w_shadow            if a_first   (the OLD shadow when a load hits the same edge)
//   w_shadow <= w_data              if w_load
// Registering the multiplier's inputs and product makes the routes to and from a DSP block and
// the multiply separate pipeline stages; on ECP5 edgehls_mult puts the three registers inside
// the MULT18X18D (hw/ecp5/mult.v).
// Reset (synchronous, active low) clears a_first_o and the active weight (so that an idle array
// computes 0 * 0 from reset on, as a_in is 0 while idle); the rest of the datapath is not reset.
//
// Parameters:
//   AW    activation width (signed)
//   WW    weight width (signed)
//   ACC_W partial-sum width (signed); ACC_W >= AW + WW keeps every product exact
/* verilator lint_off DECLFILENAME */  // files are named after the block, modules edgehls_*
module edgehls_pe #(
    parameter AW = 9,
    parameter WW = 8,
    parameter ACC_W = 32
) (
    input  wire                    clk,
    input  wire                    rst_n,
    input  wire                    a_first,
    input  wire signed [AW-1:0]    a_in,
    output reg                     a_first_o,
    output reg  signed [AW-1:0]    a_o,
    input  wire signed [ACC_W-1:0] p_in,
    output reg  signed [ACC_W-1:0] p_o,
    input  wire                    w_load,
    input  wire signed [WW-1:0]    w_data
);
    localparam PW = AW + WW;  // exact product width

    reg  signed [WW-1:0]    w_shadow;
    reg  signed [WW-1:0]    w_active;
    wire signed [WW-1:0]    w_use = a_first ? w_shadow : w_active;
    /* verilator lint_off UNUSEDSIGNAL */  // top bits dropped only when ACC_W < AW + WW
    wire signed [PW-1:0]    term;
    /* verilator lint_on UNUSEDSIGNAL */
    wire signed [ACC_W-1:0] term_ext;

    edgehls_mult #(
        .AW(AW),
        .BW(WW)
    ) u_mult (
        .clk(clk),
        .a(a_in),
        .b(w_use),
        .p(term)
    );

    generate
        if (ACC_W > PW) begin : g_sext
            assign term_ext = {{(ACC_W-PW){term[PW-1]}}, term};
        end else begin : g_trunc
            // ACC_W < AW + WW: the sum is kept modulo 2**ACC_W, as the caller chose
            assign term_ext = term[ACC_W-1:0];
        end
    endgenerate

    always @(posedge clk) begin
        a_o <= a_in;
        p_o <= p_in + term_ext;
        if (w_load) w_shadow <= w_data;
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            a_first_o <= 1'b0;
            w_active <= {WW{1'b0}};
        end else begin
            a_first_o <= a_first;
            if (a_first) w_active <= w_shadow;
        end
    end
endmodule
`default_nettype wire
