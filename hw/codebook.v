`timescale 1ns/1ps
`default_nettype none
// edgehls_codebook: the weight-sharing decoder. The weight ROM holds IB-bit indices; as each
// tile row is loaded, C parallel look-ups in the loading layer's codebook turn them back into
// WW-bit weights (combinational, so loading keeps its timing).
//
// Parameters:
//   C     indices per ROM word (the array's columns)
//   IB    index bits (the --share-bits of the compile)
//   WW    weight width
//   NL    layers; layer l's codebook sits at addresses l * 2**IB .. (l+1) * 2**IB - 1
//   CSW   layer-select width
//   FILE  $readmemh file of NL * 2**IB weights
module edgehls_codebook #(
    parameter integer C = 4,
    parameter integer IB = 4,
    parameter integer WW = 8,
    parameter integer NL = 1,
    parameter integer CSW = 1,
    parameter FILE = "codebook.hex"
) (
    input  wire [CSW-1:0]  sel,
    input  wire [C*IB-1:0] idx,
    output wire [C*WW-1:0] weights
);
    localparam integer DEPTH = NL << IB;
    localparam integer AW = CSW + IB;

    reg [WW-1:0] mem [0:DEPTH-1];

    initial $readmemh(FILE, mem);

    genvar j;
    generate
        for (j = 0; j < C; j = j + 1) begin : g_lookup
            wire [AW-1:0] a = {sel, idx[j*IB +: IB]};
            assign weights[j*WW +: WW] = mem[a];
        end
    endgenerate
endmodule
`default_nettype wire
