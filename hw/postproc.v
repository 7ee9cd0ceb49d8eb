`timescale 1ns/1ps
`default_nettype none
// edgehls_postproc: bias, requantization and saturation of one accumulator per cycle.
//
//   out = clip(((in_acc + bias) * mult + rnd) >>> shift, lo, hi),  rnd = shift ? 2**(shift-1) : 0
//
// where (mult, shift) is (mult_n, shift_n) when in_acc + bias < 0 (a LeakyRelu/PRelu slope
// folded into the requantizer; a layer without one has mult_n = mult, shift_n = shift):
// bit for bit edgehls.numerics.requantize(acc + bias, mult, shift, lo, hi,
// neg=(mult_n, shift_n)), clip being
// min(max(y, lo), hi) as numpy's (so hi wins if lo > hi), for every input whose acc + bias fits
// ACC_W bits. For shift > 0 the rounding is computed as h = prod >>> (shift-1), out = (h >>> 1)
// + h[0], which equals (prod + 2**(shift-1)) >>> shift exactly (both are floor((h + 1) / 2)) and
// needs no adder 2**SB bits wide: the sum stays within the ACC_W + MB + 1 product bits.
//
// Fixed latency LAT = 6: out_valid/out_data/out_tag during cycle t+6 belong to the inputs
// presented during cycle t. No back-pressure: one result per cycle, every cycle.
//   stage 1: s    = in_acc + bias             (mult, shift, lo, hi, tag, valid carried along)
//   stage 2: prod = s * {1'b0, s < 0 ? mult_n : mult}    signed x unsigned, ACC_W + MB + 1 bits,
//            exact (and shift_n or shift carried on),
//            in two steps: 18 x 18 partial products, then their sum
//   stage 3: h    = prod >>> (shift - 1)      the barrel shifter alone (prod when shift = 0)
//   stage 4: y    = (h >>> 1) + h[0]          round half up (y = prod when shift = 0)
//   stage 5: out  = saturate(y, lo, hi)
// (Three stages after the multiply keep the shifter, the rounding add and the compares out of
// one another's paths: on ECP5 the one-stage version limited the design to 50 MHz.)
// bias, mult, shift, mult_n, shift_n, lo, hi and in_tag are sampled with in_acc, so they may change every cycle.
// Reset (synchronous, active low) clears the valid pipeline only.
//
// Parameters:
//   ACC_W accumulator and bias width (signed)
//   OUT_W output width (signed); lo and hi use it too; OUT_W < ACC_W + MB + 1
//   MB    multiplier width (unsigned)
//   SB    shift width (unsigned, 0 .. 2**SB-1)
//   TW    width of the tag carried alongside (e.g. channel or address), unchanged
/* verilator lint_off DECLFILENAME */  // files are named after the block, modules edgehls_*
module edgehls_postproc #(
    parameter ACC_W = 32,
    parameter OUT_W = 9,
    parameter MB = 16,
    parameter SB = 6,
    parameter TW = 1
) (
    input  wire                    clk,
    input  wire                    rst_n,
    input  wire                    in_valid,
    input  wire signed [ACC_W-1:0] in_acc,
    input  wire signed [ACC_W-1:0] bias,
    input  wire        [MB-1:0]    mult,
    input  wire        [SB-1:0]    shift,
    input  wire        [MB-1:0]    mult_n,
    input  wire        [SB-1:0]    shift_n,
    input  wire signed [OUT_W-1:0] lo,
    input  wire signed [OUT_W-1:0] hi,
    input  wire        [TW-1:0]    in_tag,
    output wire                    out_valid,
    output reg  signed [OUT_W-1:0] out_data,
    output reg         [TW-1:0]    out_tag
);
    localparam LAT = 6;               // cycles from input to output (documentation for callers)
    localparam PW = ACC_W + MB + 1;   // exact product width
    localparam [SB-1:0] SH_ONE = 1;

    // stage 1: bias
    reg signed [ACC_W-1:0] s1;
    reg        [MB-1:0]    mult1, mult_n1;
    reg        [SB-1:0]    shift1, shift_n1;
    reg signed [OUT_W-1:0] lo1, hi1;
    reg        [TW-1:0]    tag1;

    always @(posedge clk) begin
        s1     <= in_acc + bias;
        mult1  <= mult;
        shift1 <= shift;
        mult_n1  <= mult_n;
        shift_n1 <= shift_n;
        lo1    <= lo;
        hi1    <= hi;
        tag1   <= in_tag;
    end

    // stage 2: multiply (signed x unsigned, as signed with a zero sign bit on mult), cut into
    // partial products of at most 18 x 18 bits, each one DSP block with registered output
    // (edgehls_mult: on ECP5 that register is inside the MULT18X18D); stage 2b adds them.
    // (One wide multiply-and-add limited ECP5 to 86 MHz, the product registers in the fabric
    // to 104 MHz.)
    localparam L = 17;                // low part: s1[L-1:0], unsigned
    reg        [SB-1:0]    shift2a, shift2;
    reg signed [OUT_W-1:0] lo2a, hi2a, lo2, hi2;
    reg        [TW-1:0]    tag2a, tag2;
    reg signed [PW-1:0]    prod2;
    wire                   neg1 = s1[ACC_W-1];  // acc + bias < 0: the negative-side pair
    wire signed [MB:0]     mult1_s = {1'b0, neg1 ? mult_n1 : mult1};

    generate
        if (ACC_W > L) begin : g_split
            wire signed [L+MB+1:0]    p_lo;   // {0, s[L-1:0]} x mult
            wire signed [ACC_W-L+MB:0] p_hi;  // s[ACC_W-1:L] x mult
            wire signed [L:0]         s_lo = {1'b0, s1[L-1:0]};
            wire signed [ACC_W-L-1:0] s_hi = s1[ACC_W-1:L];
            edgehls_mult #(.AW(L + 1), .BW(MB + 1), .IN_REG(0)) u_lo (
                .clk(clk), .a(s_lo), .b(mult1_s), .p(p_lo)
            );
            edgehls_mult #(.AW(ACC_W - L), .BW(MB + 1), .IN_REG(0)) u_hi (
                .clk(clk), .a(s_hi), .b(mult1_s), .p(p_hi)
            );
            always @(posedge clk) begin
                prod2 <= ($signed({{(PW-(ACC_W-L+MB+1)){p_hi[ACC_W-L+MB]}}, p_hi}) <<< L)
                         + $signed({{(PW-(L+MB+2)){p_lo[L+MB+1]}}, p_lo});
            end
        end else begin : g_one
            wire signed [PW-1:0] p;
            edgehls_mult #(.AW(ACC_W), .BW(MB + 1), .IN_REG(0)) u_one (
                .clk(clk), .a(s1), .b(mult1_s), .p(p)
            );
            always @(posedge clk) begin
                prod2 <= p;
            end
        end
    endgenerate

    always @(posedge clk) begin
        shift2a <= neg1 ? shift_n1 : shift1;
        lo2a    <= lo1;
        hi2a    <= hi1;
        tag2a   <= tag1;
        shift2  <= shift2a;
        lo2     <= lo2a;
        hi2     <= hi2a;
        tag2    <= tag2a;
    end

    // stage 3: the variable shift (a barrel shifter) on its own
    reg signed [PW-1:0]    half3;
    reg                    noshift3;
    reg signed [OUT_W-1:0] lo3, hi3;
    reg        [TW-1:0]    tag3;

    always @(posedge clk) begin
        half3    <= (shift2 == {SB{1'b0}}) ? prod2 : prod2 >>> (shift2 - SH_ONE);
        noshift3 <= (shift2 == {SB{1'b0}});
        lo3      <= lo2;
        hi3      <= hi2;
        tag3     <= tag2;
    end

    // stage 4: round half up: floor(prod / 2**(shift-1)) -> floor((that + 1) / 2)
    reg signed [PW-1:0]    y4;
    reg signed [OUT_W-1:0] lo4, hi4;
    reg        [TW-1:0]    tag4;

    always @(posedge clk) begin
        y4   <= noshift3 ? half3 : (half3 >>> 1) + $signed({{(PW-1){1'b0}}, half3[0]});
        lo4  <= lo3;
        hi4  <= hi3;
        tag4 <= tag3;
    end

    // stage 5: saturate to [lo, hi]. y4 > hi and y4 < lo without PW-bit compares (a carry
    // chain that long was the ECP5 critical path): y4 either fits OUT_W bits (its top bits all
    // copy its sign), and then compares as its low OUT_W bits, or overflows towards its sign
    wire                   y_neg = y4[PW-1];
    wire                   fits = y_neg ? &y4[PW-2:OUT_W-1] : ~|y4[PW-2:OUT_W-1];
    wire signed [OUT_W-1:0] y_low = y4[OUT_W-1:0];
    wire                   sel_hi = (fits ? (y_low > hi4) : !y_neg) || (lo4 > hi4);
    wire                   sel_lo = fits ? (y_low < lo4) : y_neg;

    always @(posedge clk) begin
        out_data <= sel_hi ? hi4 : (sel_lo ? lo4 : y4[OUT_W-1:0]);
        out_tag  <= tag4;
    end

    // valid pipeline, one bit a stage: the only reset registers
    reg [LAT-1:0] valid_pipe;
    always @(posedge clk) begin
        if (!rst_n) valid_pipe <= {LAT{1'b0}};
        else        valid_pipe <= {valid_pipe[LAT-2:0], in_valid};
    end
    assign out_valid = valid_pipe[LAT-1];
endmodule
`default_nettype wire
