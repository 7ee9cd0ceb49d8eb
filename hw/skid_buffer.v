`timescale 1ns/1ps
`default_nettype none
// edgehls_skid_buffer: a two-entry valid/ready register slice (skid buffer).
//
// Every output is a register: in_ready, out_valid and out_data have no combinational path from
// any input, so the slice cuts the ready path as well as the data path. With out_ready held high
// it passes one beat a cycle (latency 1). When the output stalls, the beat accepted in the same
// cycle (in_ready was already high) lands in the skid register and in_ready drops.
//
// Stream rules kept: while out_valid && !out_ready, out_valid and out_data hold; every accepted
// beat (in_valid && in_ready at a rising edge) leaves exactly once, in order.
// Reset (synchronous, active low) empties the buffer; in_ready is low during reset and in the
// first cycle after it.
//
// Parameters:
//   W  data width
/* verilator lint_off DECLFILENAME */  // files are named after the block, modules edgehls_*
module edgehls_skid_buffer #(
    parameter W = 8
) (
    input  wire         clk,
    input  wire         rst_n,
    input  wire         in_valid,
    output reg          in_ready,
    input  wire [W-1:0] in_data,
    output reg          out_valid,
    input  wire         out_ready,
    output reg  [W-1:0] out_data
);
    reg         skid_valid;
    reg [W-1:0] skid_data;

    // the output register may take a new beat this edge
    wire out_free = !out_valid || out_ready;

    always @(posedge clk) begin
        if (!rst_n) begin
            in_ready   <= 1'b0;
            out_valid  <= 1'b0;
            skid_valid <= 1'b0;
        end else if (skid_valid) begin
            // full (in_ready is low): drain the skid register into the output first
            if (out_ready) begin
                out_valid  <= 1'b1;
                skid_valid <= 1'b0;
                in_ready   <= 1'b1;
            end
        end else begin
            in_ready <= 1'b1;
            if (in_valid && in_ready) begin
                if (out_free) begin
                    out_valid <= 1'b1;
                end else begin
                    skid_valid <= 1'b1;
                    in_ready   <= 1'b0;
                end
            end else if (out_ready) begin
                out_valid <= 1'b0;
            end
        end
    end

    // data registers: not reset, loaded under the same conditions as above
    always @(posedge clk) begin
        if (skid_valid) begin
            if (out_ready) out_data <= skid_data;
        end else if (in_valid && in_ready && out_free) begin
            out_data <= in_data;
        end
        if (!skid_valid && in_valid && in_ready && !out_free) skid_data <= in_data;
    end
endmodule
`default_nettype wire
