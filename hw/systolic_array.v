`timescale 1ns/1ps
`default_nettype none
// edgehls_systolic_array: R x C weight-stationary systolic MAC array of edgehls_pe.
//
// Row i's activation stream enters PE(i,0) and flows right; partial sums start at 0 above row 0
// and flow down; column j's dot product leaves PE(R-1,j) on out_psum. A step whose in_valid is
// clear enters the row as activation 0 (one gate per row, not a valid flag per PE), so it adds 0.
//
// Timing contract: when the caller presents step m's value for row i during cycle T+i (it skews
// the rows), out_psum column j during cycle T+R+2+j (each PE registers the multiplier's inputs,
// its product, then its sum: edgehls_pe) equals the sum over the rows i whose in_valid is
// set of a_i * W[i][j], W being the weights active at that step. A step whose in_first is set
// uses, and makes active, the shadow weights loaded before it (per PE, as it passes).
//
// Weight loading: w_load, w_row and w_data are registered where they enter (the weight ROM's
// block-RAM read, slow on ECP5, then has a cycle to itself and the broadcast to the R rows
// another). While w_load is high during cycle t, the shadow weights of the C PEs of row w_row
// take w_data at the rising edge ending cycle t+1 (one row per cycle; a w_row >= R loads
// nothing). Presenting row i's load for the next tile is safe from cycle T+i+C-2 (its write
// then meets the current tile's first step at PE(i,C-1), which takes the old shadow) up to two
// cycles before the next tile's first step enters row i.
//
// Wiring uses net arrays, not one flattened vector with part-selects (Icarus runs ~40x slower
// on the latter; synthesis gives the same netlist).
//
// Parameters:
//   R     rows (activation inputs, dot-product length per pass)
//   C     columns (outputs per pass)
//   AW    activation width (signed)
//   WW    weight width (signed)
//   ACC_W partial-sum width (signed), >= AW + WW + clog2(R) avoids overflow
/* verilator lint_off DECLFILENAME */  // files are named after the block, modules edgehls_*
module edgehls_systolic_array #(
    parameter R = 4,
    parameter C = 4,
    parameter AW = 9,
    parameter WW = 8,
    parameter ACC_W = 32
) (
    input  wire               clk,
    input  wire               rst_n,
    input  wire [R-1:0]       in_valid,
    input  wire [R-1:0]       in_first,
    input  wire [R*AW-1:0]    in_data,
    input  wire               w_load,
    input  wire [RW-1:0]      w_row,
    input  wire [C*WW-1:0]    w_data,
    output wire [C*ACC_W-1:0] out_psum
);
    localparam RW = R > 1 ? $clog2(R) : 1;  // w_row width
    localparam NA = R * (C + 1);            // activation nets: C+1 per row (last one dangles)
    localparam NP = (R + 1) * C;            // partial-sum nets: R+1 per column

    // Index a net of row i, column j as i*(C+1)+j (activations) and i*C+j (partial sums).
    // The activations leaving the last column have no consumer.
    /* verilator lint_off UNUSEDSIGNAL */  // last column's forwarded activations are unused
    wire [AW-1:0]    a_net [0:NA-1];
    wire             f_net [0:NA-1];
    /* verilator lint_on UNUSEDSIGNAL */
    wire [ACC_W-1:0] p_net [0:NP-1];
    wire [R-1:0]     row_load;
    reg              w_load_r;
    reg  [RW-1:0]    w_row_r;
    reg  [C*WW-1:0]  w_data_r;

    always @(posedge clk) begin
        if (!rst_n) w_load_r <= 1'b0;
        else        w_load_r <= w_load;
        w_row_r  <= w_row;
        w_data_r <= w_data;
    end

    genvar i, j;
    generate
        for (i = 0; i < R; i = i + 1) begin : g_row
            localparam [RW-1:0] ROW = i;
            assign a_net[i*(C+1)] = in_valid[i] ? in_data[i*AW +: AW] : {AW{1'b0}};
            assign f_net[i*(C+1)] = in_first[i];
            assign row_load[i]    = w_load_r && (w_row_r == ROW);

            for (j = 0; j < C; j = j + 1) begin : g_col
                edgehls_pe #(
                    .AW(AW),
                    .WW(WW),
                    .ACC_W(ACC_W)
                ) u_pe (
                    .clk(clk),
                    .rst_n(rst_n),
                    .a_first(f_net[i*(C+1)+j]),
                    .a_in(a_net[i*(C+1)+j]),
                    .a_first_o(f_net[i*(C+1)+j+1]),
                    .a_o(a_net[i*(C+1)+j+1]),
                    .p_in(p_net[i*C+j]),
                    .p_o(p_net[(i+1)*C+j]),
                    .w_load(row_load[i]),
                    .w_data(w_data_r[j*WW +: WW])
                );
            end
        end

        for (j = 0; j < C; j = j + 1) begin : g_out
            assign p_net[j] = {ACC_W{1'b0}};
            assign out_psum[j*ACC_W +: ACC_W] = p_net[R*C+j];
        end
    endgenerate
endmodule
`default_nettype wire
