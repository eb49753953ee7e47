"""Scale stage: block-format GEMMs' integer block dot products into binary32 sums."""

from amaranth.hdl import Cat, Module, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.protocol import Format

from .activation_buffer import ActBlock
from .scale_unit import ScaleUnit
from .tile import BlockIssue
from .weight_banks import WeightScales

__all__ = ["KEEP_COPY", "PARTIAL_WIDTH", "ScaleStage"]

PARTIAL_WIDTH = 21   # a 32-block's Σ x·q: |x|, |q| <= 128, so |Σ| <= 2**19

# The attribute on the read-out's registered copies (`Config.readout_copies`: the row select here,
# the block-mode flag in the engine). Yosys merges flip-flops of the same input whatever their
# wires say; the ECP5 builds give the cells that drive wires carrying this attribute Yosys's
# ``keep`` (`boards.build`), which it does respect.
KEEP_COPY = "systolica_keep_copy"


class ScaleStage(wiring.Component):
    """`ScaleUnit`s, each serving ``Config.scale_share`` columns, turn each 32-block's dot
    products (read out of the array a row a cycle) into the binary32 sums of the tile; their
    output registers replace the array's result registers for the drain. Only a configuration
    with block formats has one.

    A block's scale entries are addressed when its last step is issued (``blocks``) and taken
    when that step has reached row 0 of the array (``row0_done``, 7 + cols - 1 cycles later),
    into one of two scale sets, the other one each block: the units read a block's set until
    its R×C dot products have all entered their datapaths, which may be after the next block's
    first one (with one unit for many columns). Blocks are at least 32 cycles apart, more than
    that with cols <= 24 (`Config`), and the scale memories read the registered addresses
    continuously.

    Ports
    -----
    blocks : stream in (valid only) of the issued blocks' `BlockIssue`.
    w_scale_addr, w_scales : out, in; the weight banks' scale entries (read a cycle later).
    a_block_addr, a_blocks : out, in; the activation buffer's block entries (likewise).
    wmode : in; the GEMM is in a block format. ``fmt`` : in; its format.
    row0_done : in; the array's row 0 has the block's dot products (a sweep starts).
    partials : in; the array's read-out row ``row_sel``.
    row_sel : out; the array's read-out row: a sweep of the rows in a block GEMM, otherwise the
        drain's next row (``drain_next``); ``Config.readout_copies`` registered copies of it.
    drain_row, drain_next, drain_bank : in; the drain's row now and next, and its output bank.
    tile_done : in; a tile's results are ready (either path): the next goes to the other bank.
    final : out; the tile's last sum is in the output registers.
    out : out; row ``drain_row`` of output bank ``drain_bank``: ``cols`` binary32.
    """

    def __init__(self, config):
        self._config = config
        cfg = config
        nkb = cfg.max_k // 32
        super().__init__({
            "blocks": In(stream.Signature(BlockIssue(cfg), always_ready=True)),
            "w_scale_addr": Out(range(2 * nkb)),
            "w_scales": In(data.ArrayLayout(WeightScales, cfg.cols)),
            "a_block_addr": Out(range(cfg.act_depth // 32)),
            "a_blocks": In(data.ArrayLayout(ActBlock, cfg.rows)),
            "wmode": In(1),
            "fmt": In(2),
            "row0_done": In(1),
            "partials": In(data.ArrayLayout(data.signed(cfg.acc_width), cfg.cols)),
            "row_sel": Out(Shape.cast(range(cfg.rows)).width * cfg.readout_copies),
            "drain_row": In(range(cfg.rows)),
            "drain_next": In(range(cfg.rows)),
            "drain_bank": In(1),
            "tile_done": In(1),
            "final": Out(1),
            "out": Out(data.ArrayLayout(32, cfg.cols)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        rows, share = cfg.rows, cfg.scale_share
        pend = Signal(BlockIssue(cfg))
        with m.If(self.blocks.valid):
            m.d.sync += pend.eq(self.blocks.payload)
        m.d.comb += [self.w_scale_addr.eq(pend.w_block), self.a_block_addr.eq(pend.a_block)]
        cur_w = Signal(data.ArrayLayout(self.w_scales.shape(), 2))
        cur_a = Signal(data.ArrayLayout(self.a_blocks.shape(), 2))
        cur_first = Signal(2)
        cur_last = Signal(2)
        block_set = Signal()
        with m.If(self.row0_done):
            m.d.sync += block_set.eq(~block_set)
            for s in range(2):
                with m.If(block_set != s):
                    m.d.sync += [cur_w[s].eq(self.w_scales), cur_a[s].eq(self.a_blocks),
                                 cur_first[s].eq(pend.first), cur_last[s].eq(pend.last)]
        out_wr = Signal()       # the output bank the next finished tile goes to
        with m.If(self.tile_done):
            m.d.sync += out_wr.eq(~out_wr)
        is_q4_1 = Signal()      # registered as wmode is (timing)
        m.d.sync += is_q4_1.eq(self.fmt == Format.Q4_1)
        sweep, row_sel = self._sweep(m)
        units = []
        for first_col in range(0, cfg.cols, share):
            unit = ScaleUnit(rows, share, PARTIAL_WIDTH,
                             offset_term=Format.Q4_1 in cfg.block_formats,
                             multiplier=cfg.scale_multiplier)
            m.submodules[f"scale_{first_col // share}"] = unit
            units.append(unit)
            m.d.comb += [
                unit.block.eq(block_set), unit.first.eq(cur_first), unit.last.eq(cur_last),
                unit.offset.eq(is_q4_1), unit.out_row.eq(self.drain_row),
                unit.out_wr.eq(out_wr), unit.out_rd.eq(self.drain_bank),
            ]
            for g in range(share):
                c = first_col + g
                # The items into the units are registered (a row of the array a cycle).
                valid = Signal(name=f"item_valid_{c}")
                row = Signal(range(rows), name=f"item_row_{c}")
                partial = Signal(data.signed(PARTIAL_WIDTH), name=f"item_partial_{c}")
                m.d.sync += [valid.eq(sweep & self.wmode), row.eq(row_sel),
                             partial.eq(self.partials[c])]
                m.d.comb += [unit.valid[g].eq(valid), unit.row[g].eq(row),
                             unit.partial[g].eq(partial)]
                for s in range(2):
                    m.d.comb += [unit.dw[s][g].eq(cur_w[s][c].dw),
                                 unit.mw[s][g].eq(cur_w[s][c].mw)]
            for s in range(2):
                for r in range(rows):
                    m.d.comb += [unit.dx[s][r].eq(cur_a[s][r].dx),
                                 unit.act_sum[s][r].eq(cur_a[s][r].sum)]
        # The last unit's last column, last row finishes a tile last.
        last = units[-1]
        m.d.comb += [
            self.final.eq(last.final & (last.final_row == rows - 1) &
                          (last.final_col == share - 1)),
            self.out.eq(Cat(unit.out for unit in units)),
        ]
        return m

    def _sweep(self, m):
        """The array's read-out row: from PE (0, cols-1)'s capture on, one row a cycle
        (`SystolicArray.row0_done`), all columns at once, in a block GEMM; the drain's row in an
        int8 one (row 0 between sweeps: an int8 GEMM leaves its last drained row in it, which is
        not a sweep). Returns "a row of a sweep is read out now" and the read-out row."""
        rows, copies = self._config.rows, self._config.readout_copies
        if copies == 1:
            selects = [self.row_sel]
        else:
            selects = [Signal(range(rows), name=f"row_sel_{i}", attrs={KEEP_COPY: 1})
                       for i in range(copies)]
            m.d.comb += self.row_sel.eq(Cat(selects))
        row_sel = selects[0]
        sweeping = Signal()     # rows 1 .. rows-1 of a sweep
        sweep = Signal()
        m.d.comb += sweep.eq(self.row0_done | sweeping)
        with m.If(~self.wmode):
            m.d.sync += [*(sel.eq(self.drain_next) for sel in selects), sweeping.eq(0)]
        with m.Elif(sweep & (row_sel != rows - 1)):
            m.d.sync += [*(sel.eq(row_sel + 1) for sel in selects), sweeping.eq(1)]
        with m.Else():
            m.d.sync += [*(sel.eq(0) for sel in selects), sweeping.eq(0)]
        return sweep, row_sel
