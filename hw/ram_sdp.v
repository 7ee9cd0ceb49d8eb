`timescale 1ns/1ps
`default_nettype none
// edgehls_ram_sdp: simple dual-port RAM, one write port and one synchronous read port, written so
// that Yosys and vendor tools infer block RAM.
//
// Parameters:
//   W     data width in bits
//   DEPTH number of words
//   AW    address width (derived; override only to widen)
// Timing: a read address presented in cycle t gives its word in cycle t+1. A write at the end of
// cycle t is seen by a read addressed in cycle t+1 or later.
module edgehls_ram_sdp #(
    parameter integer W = 8,
    parameter integer DEPTH = 16,
    parameter integer AW = (DEPTH > 1) ? $clog2(DEPTH) : 1
) (
    input  wire          clk,
    input  wire          we,
    input  wire [AW-1:0] waddr,
    input  wire [W-1:0]  wdata,
    input  wire [AW-1:0] raddr,
    output reg  [W-1:0]  rdata
);
    reg [W-1:0] mem [0:DEPTH-1];

    always @(posedge clk) begin
        if (we) mem[waddr] <= wdata;
        rdata <= mem[raddr];
    end
endmodule
`default_nettype wire
