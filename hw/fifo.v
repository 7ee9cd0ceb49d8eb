`timescale 1ns/1ps
`default_nettype none
// edgehls_fifo: a small synchronous FIFO whose head is a valid/ready stream source.
//
// Parameters:
//   W      data width
//   DEPTH  number of entries (a power of two)
// The stream rules hold at the output: while out_valid && !out_ready the head does not change,
// and every word written is read exactly once. `count` lets a producer with read latency keep
// credit (words written + words in flight <= DEPTH).
module edgehls_fifo #(
    parameter integer W = 8,
    parameter integer DEPTH = 4,
    parameter integer PW = (DEPTH > 1) ? $clog2(DEPTH) : 1
) (
    input  wire         clk,
    input  wire         rst_n,
    input  wire         in_valid,
    input  wire [W-1:0] in_data,
    output wire         out_valid,
    input  wire         out_ready,
    output wire [W-1:0] out_data,
    output reg  [PW:0]  count
);
    reg [W-1:0]  mem [0:DEPTH-1];
    reg [PW-1:0] wp, rp;
    wire pop = out_valid && out_ready;

    assign out_valid = (count != 0);
    assign out_data = mem[rp];

    always @(posedge clk) begin
        if (in_valid) mem[wp] <= in_data;
        if (!rst_n) begin
            wp <= {PW{1'b0}};
            rp <= {PW{1'b0}};
            count <= {(PW + 1){1'b0}};
        end else begin
            if (in_valid) wp <= wp + 1'b1;
            if (pop) rp <= rp + 1'b1;
            count <= count + {{PW{1'b0}}, in_valid} - {{PW{1'b0}}, pop};
        end
    end
endmodule
`default_nettype wire
