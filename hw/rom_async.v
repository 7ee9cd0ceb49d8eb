`timescale 1ns/1ps
`default_nettype none
// edgehls_rom_async: a small read-only table with two asynchronous read ports (the schedule:
// the loader and the issuer read different entries in the same cycle). Maps to LUTs.
//
// Parameters:
//   W     word width
//   DEPTH number of words
//   FILE  $readmemh file, relative to the tool's working directory (the design directory)
//   AW    address width (derived)
module edgehls_rom_async #(
    parameter integer W = 8,
    parameter integer DEPTH = 16,
    parameter FILE = "rom.hex",
    parameter integer AW = (DEPTH > 1) ? $clog2(DEPTH) : 1
) (
    input  wire [AW-1:0] addr_a,
    output wire [W-1:0]  data_a,
    input  wire [AW-1:0] addr_b,
    output wire [W-1:0]  data_b
);
    reg [W-1:0] mem [0:DEPTH-1];

    initial $readmemh(FILE, mem);

    assign data_a = mem[addr_a];
    assign data_b = mem[addr_b];
endmodule
`default_nettype wire
