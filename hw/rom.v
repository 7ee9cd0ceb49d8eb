`timescale 1ns/1ps
`default_nettype none
// edgehls_rom: read-only memory initialised from a $readmemh file, synchronous read, so that
// Yosys and vendor tools infer block RAM.
//
// Parameters:
//   W     word width in bits
//   DEPTH number of words
//   FILE  $readmemh file, relative to the tool's working directory (the design directory)
//   AW    address width (derived)
// Timing: an address presented in cycle t gives its word in cycle t+1.
module edgehls_rom #(
    parameter integer W = 8,
    parameter integer DEPTH = 16,
    parameter FILE = "rom.hex",
    parameter integer AW = (DEPTH > 1) ? $clog2(DEPTH) : 1
) (
    input  wire          clk,
    input  wire [AW-1:0] addr,
    output reg  [W-1:0]  data
);
    reg [W-1:0] mem [0:DEPTH-1];

    initial $readmemh(FILE, mem);

    always @(posedge clk) data <= mem[addr];
endmodule
`default_nettype wire
