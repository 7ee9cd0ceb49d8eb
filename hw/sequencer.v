`timescale 1ns/1ps
`default_nettype none
// edgehls_sequencer: walks the schedule (one entry per weight tile) and drives the weight loader
// and the activation step issue. Nothing in it is model specific: the schedule ROM is.
//
// Parameters:
//   R, C  array rows and columns
//   NT    number of schedule entries (tiles)
//   SW    schedule entry width (the sum of the field widths below, packed LSB first:
//         w_addr[WAW] m_count[MCW] k_rows[RCW] n_cols[CCW] clear last barrier
//         rd_base[XAW] rd_rot[BW] wr_base[AAW] wr_stride[AAW] wr_rot[BW]
//         p_addr[PAW] layer[CSW] off_h[SDW] off_w[SDW] mlo[CCW] mhi[CCW]);
//         edgehls.romgen packs the same layout.
//   WAW, MCW, RCW, CCW, AAW, BW, PAW, CSW  field widths
//   XAW, SDW, DW, STW  signed read-address, signed window-position, map-size and stride widths
//   LTW   layer-table word: ih[DW] iw[DW] ow[DW] sh[STW] sw[STW] a_step[XAW] a_wrap[XAW] max
//         red, and with PK r_step[BW] r_wrap[BW]
//   B     activation banks (the rotation of a read is in [0, B))
//   PK    1, 2: some layer's input is packed (edgehls.tiler.packed_layers, along w or h);
//         0: the rotation walk and the table's r_step/r_wrap are left out
//
// Every layer is a convolution over an NHWC map (a dense layer is 1 x 1 over 1 x M pixels):
// step m of a tile is output pixel (oh, ow) = (m / OW, m % OW); it reads input pixel
// (oh*sh + off_h, ow*sw + off_w) of the tile's kernel position, at a running address that
// steps by a_step along a row and a_wrap to the next row. A pixel outside the map (padding)
// is flagged (st_pvalid = 0) and read as zeros.
// Packed input (PK): the read position is a flat element index (word rd, bank rotation
// st_rd_rot) that advances by (a_step, r_step) per output pixel and (a_wrap, r_wrap) at the end
// of an output row: rot' = rot + r; past B it wraps (rot' - B) and the word takes one more. The
// other layers have r_step = r_wrap = 0 (the rotation stays the tile's). A layer packed along w
// (h) has its padded width (height) as the table's iw (ih) and off_w (off_h) = 0 in its tiles,
// so only the other axis can be outside the map.
// Reduce mode (the layer's `red` bit: a global average pool) sums all M steps of a tile into one
// accumulator entry: st_m stays 0, st_clear is only on the tile's first step and st_last only on
// its final one (so one output pixel is written, on the `last` tile). The timing is the same.
//
// Timing (edgehls.tiler.cycle_model computes the same recurrence; tests compare them):
//   `go` starts the schedule; the cycle after it is run cycle 0.
//   Tile i's weight load starts at run cycle L_i = max(L_{i-1} + R, D_{i-1} + 1 + C) (L_0 = 0):
//   the weight ROM is addressed for rows 0..R-1 at cycles L_i .. L_i + R - 1.
//   Tile i is decided at D_i = max(L_i, D_{i-1} + max(M_{i-1}, 2),
//   barrier_i ? D_{i-1} + M_{i-1} + DRAIN - 1) and its steps m = 0..M_i-1 are issued at
//   D_i + 1 + m. `finished` pulses and `cycles` holds D_last + M_last + DRAIN
//   (DRAIN = R + C + 11 + XLAT).
module edgehls_sequencer #(
    parameter integer R = 4,
    parameter integer C = 4,
    parameter integer NT = 1,
    parameter integer WAW = 8,
    parameter integer MCW = 8,
    parameter integer RCW = 3,
    parameter integer CCW = 3,
    parameter integer AAW = 8,
    parameter integer B = 4,
    parameter integer BW = 2,
    parameter integer PAW = 4,
    parameter integer CSW = 1,
    parameter integer XAW = AAW + 3,
    parameter integer DW = 4,
    parameter integer SDW = DW + 2,
    parameter integer STW = 1,
    parameter integer PK = 0,  // 1, 2: some layer's input is packed: the rotation walk
    parameter integer LTW = 3 * DW + 2 * STW + 2 * XAW + 2 + ((PK != 0) ? 2 * BW : 0),
    parameter integer SW = WAW + MCW + RCW + CCW + 3 + XAW + 2 * AAW + 2 * BW + PAW + CSW
                           + 2 * SDW + 2 * CCW,
    parameter integer SAW = (NT > 1) ? $clog2(NT) : 1,
    parameter integer RW = (R > 1) ? $clog2(R) : 1,
    parameter integer XLAT = 0,  // extra write latency of the columns (1 with table activations)
    parameter integer RED = 0  // 1: some layer runs in reduce mode; 0: its logic is left out
) (
    input  wire           clk,
    input  wire           rst_n,
    input  wire           go,
    output reg            finished,
    output reg  [31:0]    cycles,
    // schedule ROM, two asynchronous read ports (loader and issuer)
    output wire [SAW-1:0] sched_addr_ld,
    // the loader reads only the w_addr and layer fields of its entry
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [SW-1:0]  sched_ld,
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [SAW-1:0] sched_addr_is,
    input  wire [SW-1:0]  sched_is,
    // layer table, asynchronous read, addressed by the issuing tile's layer
    output wire [CSW-1:0] ltab_addr,
    input  wire [LTW-1:0] ltab,
    // weight ROM read port and the array's shadow-weight write (one cycle after the read)
    output wire [WAW-1:0] wrom_addr,
    output reg            w_load,
    output reg  [RW-1:0]  w_row,
    output reg  [CSW-1:0] w_layer,  // the loading tile's layer, aligned with w_load
    // the step issued this cycle
    output reg            st_valid,
    output reg            st_first,
    output reg            st_clear,
    output reg            st_last,
    output reg  [MCW-1:0] st_m,
    output reg  [RCW-1:0] st_k_rows,
    output reg  [CCW-1:0] st_n_cols,
    output wire [AAW-1:0] st_rd_addr,
    output wire           st_pvalid,
    output reg            st_max,
    output reg  [CCW-1:0] st_mlo,
    output reg  [CCW-1:0] st_mhi,
    output reg  [BW-1:0]  st_rd_rot,
    output reg  [AAW-1:0] st_wr_addr,
    output reg  [BW-1:0]  st_wr_rot,
    output reg  [PAW-1:0] st_p_addr
);
    localparam integer DRAIN = R + C + 11 + XLAT;
    localparam [31:0]  NT32 = NT;
    localparam [31:0]  R1_32 = R - 1;
    localparam [SAW:0] NT_I = NT32[SAW:0];
    // field offsets, LSB first
    localparam integer O_WADDR = 0;
    localparam integer O_M = O_WADDR + WAW;
    localparam integer O_KROWS = O_M + MCW;
    localparam integer O_NCOLS = O_KROWS + RCW;
    localparam integer O_CLEAR = O_NCOLS + CCW;
    localparam integer O_LAST = O_CLEAR + 1;
    localparam integer O_BARRIER = O_LAST + 1;
    localparam integer O_RDBASE = O_BARRIER + 1;
    localparam integer O_RDROT = O_RDBASE + XAW;
    localparam integer O_WRBASE = O_RDROT + BW;
    localparam integer O_WRSTRIDE = O_WRBASE + AAW;
    localparam integer O_WRROT = O_WRSTRIDE + AAW;
    localparam integer O_PADDR = O_WRROT + BW;
    localparam integer O_LAYER = O_PADDR + PAW;
    localparam integer O_OFFH = O_LAYER + CSW;
    localparam integer O_OFFW = O_OFFH + SDW;
    localparam integer O_MLO = O_OFFW + SDW;
    localparam integer O_MHI = O_MLO + CCW;
    // layer-table fields
    localparam integer L_IH = 0;
    localparam integer L_IW = L_IH + DW;
    localparam integer L_OW = L_IW + DW;
    localparam integer L_SH = L_OW + DW;
    localparam integer L_SW = L_SH + STW;
    localparam integer L_STEP = L_SW + STW;
    localparam integer L_WRAP = L_STEP + XAW;
    localparam integer L_MAX = L_WRAP + XAW;
    localparam integer L_RED = L_MAX + 1;
    localparam integer L_RSTEP = L_RED + 1;  // with PK only
    localparam integer L_RWRAP = L_RSTEP + BW;

    // The earliest-cycle constraints of the timing recurrence, each kept as the number of cycles
    // still to wait (0: met) rather than an absolute cycle compared with cyc: a 32-bit compare
    // in front of ld_start / is_start, which enable most of the step registers, was the ECP5
    // critical path (104 MHz). Each is set when its tile starts and counts down to 0:
    //   wait_a: cyc >= L_i + R            wait_b: cyc >= D_i + 1 + C
    //   wait_s: cyc >= D_i + max(M_i, 2)  wait_e: cyc >= D_i + M_i + DRAIN - 1 (barrier; and
    //   the end: the first cycle it is met after the last tile is the old cyc == end_at)
    localparam integer KW = $clog2((1 << MCW) + DRAIN + R + C) + 1;  // wait counter width
    localparam [31:0] C32 = C;
    localparam [31:0] DRAIN32 = DRAIN;
    reg         running;
    reg  [31:0] cyc;
    reg  [KW-1:0] wait_a, wait_b, wait_s, wait_e;
    // za..ze == (wait_a..wait_e == 0), registered beside the counters: no zero compare of a
    // counter in front of ld_start / is_start (the next ECP5 critical path at 121 MHz)
    reg           za, zb, zs, ze;
    reg  [SAW:0] ld_idx, is_idx;
    // ld_more = (ld_idx < NT_I), is_more = (is_idx < NT_I), ld_ahead = (ld_idx > is_idx),
    // registered beside the indices (the loader is never more than one tile ahead:
    // ld_idx - is_idx is 0 or 1), so that no index compare sits in front of ld_start / is_start
    reg          ld_more, is_more, ld_ahead;
    reg  [RW:0]  ld_rows_left;
    reg  [WAW-1:0] ld_addr;
    reg  [RW-1:0]  ld_row;
    reg  [CSW-1:0] ld_layer;
    reg  [MCW-1:0] m_left;
    reg  [AAW-1:0] wr_stride;
    reg            red, tile_last;  // the issuing tile's reduce mode and its `last` flag
    // window walk of the issuing tile
    reg  signed [XAW-1:0] rd;
    reg  signed [SDW-1:0] ih, iw, off_w;
    reg  [DW-1:0]  owc, ow_last, ih_n, iw_n;
    reg  [STW-1:0] sh, sw;
    reg  signed [XAW-1:0] a_step, a_wrap;

    assign ltab_addr = sched_is[O_LAYER +: CSW];
    assign st_rd_addr = rd[AAW-1:0];
    assign st_pvalid = (ih >= 0) && (iw >= 0) && (ih < $signed({2'b00, ih_n}))
                       && (iw < $signed({2'b00, iw_n}));
    wire [DW-1:0] ow_n = ltab[L_OW +: DW];

    assign sched_addr_ld = ld_more ? ld_idx[SAW-1:0] : {SAW{1'b0}};
    assign sched_addr_is = is_more ? is_idx[SAW-1:0] : {SAW{1'b0}};

    wire [MCW-1:0] e_m = sched_is[O_M +: MCW];
    wire           e_barrier = sched_is[O_BARRIER];
    wire [31:0]    e_m32 = {{(32 - MCW){1'b0}}, e_m};
    wire [31:0]    e_period = (e_m32 > 32'd2) ? e_m32 : 32'd2;
    /* verilator lint_off UNUSEDSIGNAL */  // only the low KW bits are kept
    wire [31:0]    e_period_m1 = e_period - 32'd1;
    wire [31:0]    e_wait = e_m32 + DRAIN32 - 32'd2;
    /* verilator lint_on UNUSEDSIGNAL */

    wire ld_start = running && ld_more && za && zb && !ld_ahead;
    wire is_start = running && is_more && (ld_ahead || ld_start)
                    && zs && (!e_barrier || ze);

    // packed input: the rotation after this step, and whether it carried past B (one more word)
    wire [BW-1:0] rot_next;
    wire          rot_carry;
    generate
        if (PK != 0) begin : g_pk
            localparam [31:0] B32 = B;
            localparam [BW:0] B_W = B32[BW:0];
            reg  [BW-1:0] r_step, r_wrap;
            // both sums in parallel, selected by the row end (as rd's a_step/a_wrap)
            wire [BW:0] sum_s = {1'b0, st_rd_rot} + {1'b0, r_step};
            wire [BW:0] sum_w = {1'b0, st_rd_rot} + {1'b0, r_wrap};
            wire        c_s = (sum_s >= B_W), c_w = (sum_w >= B_W);
            // rot' < B <= 2^BW: the low BW bits of the difference are exact
            wire [BW-1:0] nxt_s = sum_s[BW-1:0] - (c_s ? B_W[BW-1:0] : {BW{1'b0}});
            wire [BW-1:0] nxt_w = sum_w[BW-1:0] - (c_w ? B_W[BW-1:0] : {BW{1'b0}});
            assign rot_next = (owc == ow_last) ? nxt_w : nxt_s;
            assign rot_carry = (owc == ow_last) ? c_w : c_s;
            always @(posedge clk) begin
                if (running && is_start) begin  // the issuing tile's layer's rotation steps
                    r_step <= ltab[L_RSTEP +: BW];
                    r_wrap <= ltab[L_RWRAP +: BW];
                end
            end
        end else begin : g_nopk
            assign rot_next = {BW{1'b0}};
            assign rot_carry = 1'b0;
        end
    endgenerate
    wire [XAW-1:0] rd_carry = {{(XAW - 1){1'b0}}, rot_carry};

    assign wrom_addr = ld_start ? sched_ld[O_WADDR +: WAW] : ld_addr;
    wire rom_rd = ld_start || (ld_rows_left != 0);

    always @(posedge clk) begin
        if (!rst_n) begin
            running <= 1'b0;
            finished <= 1'b0;
            w_load <= 1'b0;
            st_valid <= 1'b0;
            cycles <= 32'd0;
        end else begin
            finished <= 1'b0;
            w_load <= rom_rd;
            w_row <= ld_start ? {RW{1'b0}} : ld_row;
            w_layer <= ld_start ? sched_ld[O_LAYER +: CSW] : ld_layer;
            // `go` only comes while the sequencer is idle (the core starts a run after the last
            // one finished), so it is tested apart from `running`: kept out of the enables of
            // the step registers below (on ECP5 its fan-out was on the critical path)
            if (running) begin
                // the step pipeline: continue the current tile
                if (m_left != 0) begin
                    st_valid <= 1'b1;
                    st_first <= 1'b0;
                    st_m <= red ? {MCW{1'b0}} : st_m + 1'b1;
                    if (red) begin
                        st_clear <= 1'b0;
                        st_last <= tile_last && (m_left == {{(MCW - 1){1'b0}}, 1'b1});
                    end
                    st_wr_addr <= st_wr_addr + wr_stride;
                    if (owc == ow_last) begin
                        owc <= {DW{1'b0}};
                        iw <= off_w;
                        ih <= ih + $signed({{(SDW - STW){1'b0}}, sh});
                        rd <= (PK != 0) ? rd + a_wrap + $signed(rd_carry) : rd + a_wrap;
                    end else begin
                        owc <= owc + 1'b1;
                        iw <= iw + $signed({{(SDW - STW){1'b0}}, sw});
                        rd <= (PK != 0) ? rd + a_step + $signed(rd_carry) : rd + a_step;
                    end
                    if (PK != 0) st_rd_rot <= rot_next;
                end else begin
                    st_valid <= 1'b0;
                end
                if (is_start) begin
                    st_valid <= 1'b1;
                    st_first <= 1'b1;
                    st_m <= {MCW{1'b0}};
                    st_clear <= sched_is[O_CLEAR];
                    st_last <= sched_is[O_LAST] && (RED == 0 || !ltab[L_RED]
                                                    || e_m == {{(MCW - 1){1'b0}}, 1'b1});
                    tile_last <= sched_is[O_LAST];
                    red <= (RED != 0) && ltab[L_RED];
                    st_k_rows <= sched_is[O_KROWS +: RCW];
                    st_n_cols <= sched_is[O_NCOLS +: CCW];
                    rd <= sched_is[O_RDBASE +: XAW];
                    ih <= sched_is[O_OFFH +: SDW];
                    iw <= sched_is[O_OFFW +: SDW];
                    off_w <= sched_is[O_OFFW +: SDW];
                    owc <= {DW{1'b0}};
                    ow_last <= ow_n - 1'b1;
                    ih_n <= ltab[L_IH +: DW];
                    iw_n <= ltab[L_IW +: DW];
                    sh <= ltab[L_SH +: STW];
                    sw <= ltab[L_SW +: STW];
                    a_step <= ltab[L_STEP +: XAW];
                    a_wrap <= ltab[L_WRAP +: XAW];
                    st_max <= ltab[L_MAX];
                    st_mlo <= sched_is[O_MLO +: CCW];
                    st_mhi <= sched_is[O_MHI +: CCW];
                    st_rd_rot <= sched_is[O_RDROT +: BW];
                    st_wr_addr <= sched_is[O_WRBASE +: AAW];
                    st_wr_rot <= sched_is[O_WRROT +: BW];
                    st_p_addr <= sched_is[O_PADDR +: PAW];
                end
                if (finished == 1'b0 && !is_more && ze) begin
                    running <= 1'b0;
                    finished <= 1'b1;
                    cycles <= cyc + 32'd1;
                end
            end
            if (go) begin
                running <= 1'b1;
                st_valid <= 1'b0;
            end
        end
    end

    // counters and constraint registers (datapath-free control)
    always @(posedge clk) begin
        if (!rst_n || go) begin
            cyc <= 32'd0;
            wait_a <= {KW{1'b0}};
            wait_b <= {KW{1'b0}};
            wait_s <= {KW{1'b0}};
            wait_e <= {KW{1'b0}};
            {za, zb, zs, ze} <= 4'b1111;
            ld_idx <= 0;
            is_idx <= 0;
            ld_more <= (NT_I != 0);
            is_more <= (NT_I != 0);
            ld_ahead <= 1'b0;
            ld_rows_left <= 0;
            m_left <= {MCW{1'b0}};
        end else if (running) begin
            cyc <= cyc + 32'd1;
            if (wait_a != 0) {wait_a, za} <= {wait_a - 1'b1, wait_a == 1};
            if (wait_b != 0) {wait_b, zb} <= {wait_b - 1'b1, wait_b == 1};
            if (wait_s != 0) {wait_s, zs} <= {wait_s - 1'b1, wait_s == 1};
            if (wait_e != 0) {wait_e, ze} <= {wait_e - 1'b1, wait_e == 1};
            if (ld_start) begin
                ld_addr <= sched_ld[O_WADDR +: WAW] + 1'b1;
                ld_row <= (R > 1) ? 1 : 0;
                ld_layer <= sched_ld[O_LAYER +: CSW];
                ld_rows_left <= R1_32[RW:0];
                ld_idx <= ld_idx + 1'b1;
                ld_more <= (ld_idx + 1'b1 != NT_I);
                wait_a <= R1_32[KW-1:0];  // R - 1: met R cycles after this one
                za <= (R == 1);
            end else if (ld_rows_left != 0) begin
                ld_addr <= ld_addr + 1'b1;
                ld_row <= ld_row + 1'b1;
                ld_rows_left <= ld_rows_left - 1'b1;
            end
            if (ld_start != is_start) ld_ahead <= ld_start;  // both: the same tile, still even
            if (m_left != 0) m_left <= m_left - 1'b1;
            if (is_start) begin
                is_idx <= is_idx + 1'b1;
                is_more <= (is_idx + 1'b1 != NT_I);
                m_left <= e_m - 1'b1;
                wr_stride <= sched_is[O_WRSTRIDE +: AAW];
                wait_s <= e_period_m1[KW-1:0];
                wait_e <= e_wait[KW-1:0];
                wait_b <= C32[KW-1:0];
                zs <= (e_period_m1[KW-1:0] == 0);
                ze <= (e_wait[KW-1:0] == 0);
                zb <= 1'b0;  // C >= 1
            end
        end
    end
endmodule
`default_nettype wire
