"""Sequencer: a GEMM's steps into the array, weight tile by weight tile, row tile by row tile."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .delay import delay
from .pe import StepControl
from .tile import BlockIssue, TileMeta

__all__ = ["Sequencer"]


class Sequencer(wiring.Component):
    """For each weight tile j, for each buffered row tile i, K steps into the array.

    A step reads activation vector ``i·K + k`` and weight row k of the bank holding tile j; it
    is issued once that bank is full, and a tile's last step only once there is room for its
    results (the array's result registers hold one tile; the block formats' scale stage two,
    whose output registers are double-buffered). Every "last" flag is a register, updated with
    the counter it describes (timing). In a block format every 32-block of K is a tile of its
    own for the PEs.

    Parameters
    ----------
    config : Config
    latency : int
        The buffers' read latency from ``act_addr`` / ``r_bank``, ``r_k``: ``step`` follows it.

    Ports
    -----
    start : in; a GEMM starts with ``n``, ``k`` (and ``k_last`` = K - 1) and ``m``.
    wmode : in; the GEMM is in a block format.
    bank_full : in; per weight bank: it holds a whole tile.
    release : out; per bank: its tile's last step is issued now.
    act_addr : out; the activation vector read (registered).
    r_bank, r_k : out; the weight row read (the banks register it).
    step : out; the step's control, aligned with the buffers' read data.
    tiles : stream out (valid only) of a tile's `TileMeta`, the cycle its last step is issued.
    drained : in; a tile's results have left (its room is free again).
    blocks : (block formats) stream out (valid only) of a block's `BlockIssue`, the cycle its
        last step is issued.
    """

    def __init__(self, config, latency):
        self._config = config
        self._latency = latency
        cfg = config
        super().__init__({
            "start": In(1),
            "n": In(16),
            "k": In(range(cfg.max_k + 1)),
            "k_last": In(range(cfg.max_k)),
            "m": In(16),
            "wmode": In(1),
            "bank_full": In(2),
            "release": Out(2),
            "act_addr": Out(range(cfg.act_depth)),
            "r_bank": Out(1),
            "r_k": Out(range(cfg.max_k)),
            "step": Out(StepControl),
            "tiles": Out(stream.Signature(TileMeta(cfg), always_ready=True)),
            "drained": In(1),
            **({"blocks": Out(stream.Signature(BlockIssue(cfg), always_ready=True))}
               if cfg.block_formats else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        rows, cols, max_k = cfg.rows, cfg.cols, cfg.max_k
        blocks = bool(cfg.block_formats)
        running = Signal()
        bank = Signal()
        k = Signal(range(max_k))
        i = Signal(16)
        j = Signal(16)
        act_base = Signal(range(cfg.act_depth + max_k))
        n_left = Signal(17)
        m_left = Signal(17)
        pending = Signal(range(3))      # tiles whose last step is issued, not yet drained
        k_left = Signal(range(max_k))
        last_step = Signal()
        last_i = Signal()
        last_j = Signal()
        single_step = Signal()    # K = 1
        issue = Signal()
        block_end = k[:5] == 31
        blocked = self._block_gap(m, issue, block_end) if blocks else 0
        pending_full = pending >= (Mux(self.wmode, 2, 1) if blocks else 1)
        m.d.comb += issue.eq(running & self.bank_full.bit_select(bank, 1) &
                             ~(last_step & pending_full) & ~(blocked & self.wmode & block_end))
        m.d.sync += pending.eq(pending + (issue & last_step) - self.drained)

        # The read addresses are registered (timing: no adder in front of the block RAMs); the
        # step's control follows them, delayed to the buffers' read data.
        m.d.sync += self.act_addr.eq(act_base + k)
        m.d.comb += [self.r_bank.eq(bank), self.r_k.eq(k)]
        issued = Signal(StepControl)
        m.d.sync += [issued.valid.eq(issue),
                     issued.last.eq(Mux(self.wmode, block_end, last_step))]
        m.d.comb += self.step.eq(delay(m, issued, self._latency, "step"))

        tile = self.tiles.payload
        m.d.comb += [
            self.tiles.valid.eq(issue & last_step),
            tile.row_tile.eq(i),
            tile.col_tile.eq(j),
            tile.rows.eq(Mux(n_left > rows, rows, n_left)),
            tile.cols.eq(Mux(m_left > cols, cols, m_left)),
            tile.end.eq(last_i & last_j),
        ]
        if blocks:
            nkb = max_k // 32
            m.d.comb += [
                self.blocks.valid.eq(issue & self.wmode & block_end),
                self.blocks.payload.w_block.eq(Mux(bank, nkb, 0) + (k >> 5)),
                self.blocks.payload.a_block.eq((act_base + k) >> 5),
                self.blocks.payload.first.eq((k >> 5) == 0),
                self.blocks.payload.last.eq(last_step),
            ]

        with m.If(self.start):
            m.d.sync += [
                running.eq(1), bank.eq(0), k.eq(0), i.eq(0), j.eq(0),
                act_base.eq(0), n_left.eq(self.n), m_left.eq(self.m),
                k_left.eq(self.k_last), single_step.eq(self.k_last == 0),
                last_step.eq(self.k_last == 0),
                last_i.eq(self.n <= rows), last_j.eq(self.m <= cols),
            ]
        with m.Elif(issue):
            with m.If(last_step):
                m.d.sync += [k.eq(0), k_left.eq(self.k_last), last_step.eq(single_step)]
                with m.If(last_i):
                    m.d.comb += self.release.bit_select(bank, 1).eq(1)
                    m.d.sync += [
                        i.eq(0), act_base.eq(0), n_left.eq(self.n),
                        last_i.eq(self.n <= rows),
                        j.eq(j + 1), m_left.eq(m_left - cols), bank.eq(~bank),
                        last_j.eq(m_left <= 2 * cols),
                    ]
                    with m.If(last_j):
                        m.d.sync += running.eq(0)
                with m.Else():
                    m.d.sync += [
                        i.eq(i + 1), act_base.eq(act_base + self.k),
                        n_left.eq(n_left - rows), last_i.eq(n_left <= 2 * rows),
                    ]
            with m.Else():
                m.d.sync += [k.eq(k + 1), k_left.eq(k_left - 1), last_step.eq(k_left == 1)]
        return m

    def _block_gap(self, m, issue, block_end):
        """When one scale unit serves more dot products a block than there are cycles in it
        (rows × scale_share > 32), the ends of two blocks are kept `Config.block_period` cycles
        apart: the flag returned holds the next block's last step back until then."""
        cfg = self._config
        blocked = Signal()
        if cfg.block_period > 32:
            gap = Signal(range(cfg.block_period))
            with m.If(issue & self.wmode & block_end):
                m.d.sync += [gap.eq(cfg.block_period - 2), blocked.eq(1)]
            with m.Elif(gap != 0):
                m.d.sync += gap.eq(gap - 1)
            with m.Else():
                m.d.sync += blocked.eq(0)
        return blocked
