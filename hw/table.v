`timescale 1ns/1ps
`default_nettype none
// edgehls_table: a small read-only table with one asynchronous read port (the layer table:
// feature-map geometry per layer, read by the sequencer as a tile is issued). Maps to LUTs.
//
// Parameters:
//   W     word width
//   DEPTH number of words
//   FILE  $readmemh file, relative to the tool's working directory (the design directory)
//   AW    address width (derived)
module edgehls_table #(
    parameter integer W = 8,
    parameter integer DEPTH = 4,
    parameter FILE = "table.hex",
    parameter integer AW = (DEPTH > 1) ? $clog2(DEPTH) : 1
) (
    input  wire [AW-1:0] addr,
    output wire [W-1:0]  data
);
    reg [W-1:0] mem [0:DEPTH-1];

    initial $readmemh(FILE, mem);

    assign data = mem[addr];
endmodule
`default_nettype wire
