"""GEMM engine: activation buffer, double-buffered weight tiles, sequencer, array, drain."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .array import SystolicArray
from .pe import StepControl

__all__ = ["GemmEngine", "ResultRow"]


def ResultRow(config):  # noqa: N802 (a layout factory reads like a type)
    """Layout of one result beat: a row of ``cols`` int32 sums and where it belongs."""
    return data.StructLayout({
        "data": data.ArrayLayout(data.signed(config.acc_width), config.cols),
        "row_tile": 16,
        "col_tile": 16,
        "rows": range(config.rows + 1),
        "cols": range(config.cols + 1),
        "first": 1,   # first row of a tile
        "last": 1,    # last row of a tile
        "end": 1,     # last row of the GEMM
    })


class GemmEngine(wiring.Component):
    """Computes C = A·W with A held on chip and W streamed through once.

    A LOAD_A fills the activation buffer with ``ceil(N / rows) × K`` vectors (one word of ``rows``
    int8 per row tile and k). A GEMM then streams W as ``ceil(M / cols)`` weight tiles of K rows. Each weight
    tile is written into one of two banks while the other bank is being used: every buffered
    row tile runs K steps against it, so a weight crosses the link once and is used against every
    buffered activation row. Partial tiles need no padding from the host: vectors shorter than the
    array are zero-filled by the decoder and the unused rows/columns are not sent back.

    Results leave as rows of ``cols`` int32 (`ResultRow`), j-major, i-minor.
    """

    def __init__(self, config):
        self._config = config
        cfg = config
        super().__init__({
            "act": In(stream.Signature(data.ArrayLayout(data.signed(8), cfg.rows))),
            "wgt": In(stream.Signature(data.ArrayLayout(data.signed(8), cfg.cols))),
            "load_start": In(1),
            "gemm_start": In(1),
            "n": In(16),
            "k": In(range(cfg.max_k + 1)),
            "k_last": In(range(cfg.max_k)),
            "m": In(16),
            "results": Out(stream.Signature(ResultRow(cfg))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        rows, cols, max_k = cfg.rows, cfg.cols, cfg.max_k

        m.submodules.act_mem = act_mem = Memory(
            shape=data.ArrayLayout(data.signed(8), rows), depth=cfg.act_depth, init=[])
        m.submodules.wgt_mem = wgt_mem = Memory(
            shape=data.ArrayLayout(data.signed(8), cols), depth=2 * max_k, init=[])
        m.submodules.array = array = SystolicArray(rows, cols, acc_width=cfg.acc_bits,
                                                   multiplier=cfg.multiplier,
                                                   out_width=cfg.acc_width)
        act_wr = act_mem.write_port()
        act_rd = act_mem.read_port()
        wgt_wr = wgt_mem.write_port()
        wgt_rd = wgt_mem.read_port()

        # Activation buffer: written in order from the last LOAD_A's start.
        act_ptr = Signal(range(cfg.act_depth))
        m.d.comb += [
            self.act.ready.eq(1),
            act_wr.addr.eq(act_ptr),
            act_wr.data.eq(self.act.payload),
            act_wr.en.eq(self.act.valid),
        ]
        with m.If(self.load_start):
            m.d.sync += act_ptr.eq(0)
        with m.Elif(self.act.valid):
            m.d.sync += act_ptr.eq(act_ptr + 1)

        # Weight loader: fills bank `load_bank` with one weight tile, then the other.
        bank_full = Signal(2)
        load_bank = Signal()
        load_k = Signal(range(max_k))
        m.d.comb += [
            self.wgt.ready.eq(~bank_full.bit_select(load_bank, 1)),
            wgt_wr.addr.eq(Mux(load_bank, max_k, 0) + load_k),
            wgt_wr.data.eq(self.wgt.payload),
            wgt_wr.en.eq(self.wgt.valid & self.wgt.ready),
        ]
        set_full = Signal(2)
        clear_full = Signal(2)
        m.d.sync += bank_full.eq((bank_full | set_full) & ~clear_full)
        with m.If(self.gemm_start):
            m.d.sync += [load_bank.eq(0), load_k.eq(0), bank_full.eq(0)]
        with m.Elif(self.wgt.valid & self.wgt.ready):
            with m.If(load_k == self.k_last):
                m.d.comb += set_full.bit_select(load_bank, 1).eq(1)
                m.d.sync += [load_k.eq(0), load_bank.eq(~load_bank)]
            with m.Else():
                m.d.sync += load_k.eq(load_k + 1)

        # Sequencer: for each weight tile j, for each row tile i, K steps into the array.
        running = Signal()
        seq_bank = Signal()
        seq_k = Signal(range(max_k))
        seq_i = Signal(16)
        seq_j = Signal(16)
        act_base = Signal(range(cfg.act_depth + max_k))
        n_left = Signal(17)
        m_left = Signal(17)
        results_busy = Signal()   # the array's result registers hold a tile not yet drained

        # "Last" flags are registers, updated with the counters they describe (timing).
        k_left = Signal(range(max_k))
        last_step = Signal()
        last_i = Signal()
        last_j = Signal()
        single_step = Signal()    # K = 1
        issue = Signal()
        m.d.comb += [
            issue.eq(running & bank_full.bit_select(seq_bank, 1) & ~(last_step & results_busy)),
            act_rd.addr.eq(act_base + seq_k),
            wgt_rd.addr.eq(Mux(seq_bank, max_k, 0) + seq_k),
        ]

        step = Signal(StepControl)    # aligned with the memories' read data
        m.d.sync += [
            step.valid.eq(issue),
            step.first.eq(seq_k == 0),
            step.last.eq(last_step),
        ]
        # One more register stage between the block RAMs and the multipliers (timing: a RAM's
        # clock-to-out plus a multiplier is the longest path on the ECP5 otherwise).
        m.d.sync += [
            array.act.eq(act_rd.data),
            array.wgt.eq(wgt_rd.data),
            array.ctrl.eq(step),
        ]

        meta = Signal(ResultRow(cfg))   # where the tile in the result registers belongs
        with m.If(self.gemm_start):
            m.d.sync += [
                running.eq(1), seq_bank.eq(0), seq_k.eq(0), seq_i.eq(0), seq_j.eq(0),
                act_base.eq(0), n_left.eq(self.n), m_left.eq(self.m), self.busy.eq(1),
                k_left.eq(self.k_last), single_step.eq(self.k_last == 0),
                last_step.eq(self.k_last == 0),
                last_i.eq(self.n <= rows), last_j.eq(self.m <= cols),
            ]
        with m.Elif(issue):
            with m.If(last_step):
                m.d.sync += [
                    seq_k.eq(0), k_left.eq(self.k_last), last_step.eq(single_step),
                    results_busy.eq(1),
                    meta.row_tile.eq(seq_i),
                    meta.col_tile.eq(seq_j),
                    meta.rows.eq(Mux(n_left > rows, rows, n_left)),
                    meta.cols.eq(Mux(m_left > cols, cols, m_left)),
                    meta.end.eq(last_i & last_j),
                ]
                with m.If(last_i):
                    m.d.comb += clear_full.bit_select(seq_bank, 1).eq(1)
                    m.d.sync += [
                        seq_i.eq(0), act_base.eq(0), n_left.eq(self.n),
                        last_i.eq(self.n <= rows),
                        seq_j.eq(seq_j + 1), m_left.eq(m_left - cols), seq_bank.eq(~seq_bank),
                        last_j.eq(m_left <= 2 * cols),
                    ]
                    with m.If(last_j):
                        m.d.sync += running.eq(0)
                with m.Else():
                    m.d.sync += [
                        seq_i.eq(seq_i + 1), act_base.eq(act_base + self.k),
                        n_left.eq(n_left - rows), last_i.eq(n_left <= 2 * rows),
                    ]
            with m.Else():
                m.d.sync += [seq_k.eq(seq_k + 1), k_left.eq(k_left - 1),
                             last_step.eq(k_left == 1)]

        # Drain: once the last step reached every PE, send the tile's valid rows.
        draining = Signal()
        drain_row = Signal(range(rows))
        row_is_last = drain_row == meta.rows - 1
        m.d.comb += [
            array.row_sel.eq(drain_row),
            self.results.valid.eq(draining),
            self.results.payload.eq(meta),
            self.results.payload.data.eq(array.row),
            self.results.payload.first.eq(drain_row == 0),
            self.results.payload.last.eq(row_is_last),
            self.results.payload.end.eq(meta.end & row_is_last),
        ]
        with m.If(array.done):
            m.d.sync += [draining.eq(1), drain_row.eq(0)]
        with m.If(self.results.valid & self.results.ready):
            with m.If(row_is_last):
                m.d.sync += [draining.eq(0), results_busy.eq(0)]
                with m.If(meta.end):
                    m.d.sync += self.busy.eq(0)
            with m.Else():
                m.d.sync += drain_row.eq(drain_row + 1)
        return m
