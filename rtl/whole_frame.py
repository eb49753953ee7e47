"""Whether a GEMM's results leave in one RESULT frame (a GEMM_DRAM's whole frame), and its length."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolica import protocol

__all__ = ["WholeFrame"]


class WholeFrame(wiring.Component):
    """On a device with DRAM, a GEMM_DRAM of N <= rows (a decode step) sends all its results in
    one RESULT frame (`protocol`): this says which GEMMs do and how long that frame's payload
    is, before its header leaves.

    The length is N rows of every column tile, each row in whole link words. It is counted from
    ``start`` on, 16 column tiles a cycle and then one a cycle (M = 49152 on 16 columns: 192
    cycles), far less than the first tile takes to compute.

    Ports
    -----
    start : in; a GEMM starts (its sizes are on ``n`` and ``m``, ``stored`` says whether it is
        a GEMM_DRAM); they hold until the next ``start``.
    stored, n, m : in; see ``start``.
    on : out, from ``start`` to the next: this GEMM's results are one frame.
    length : out; that frame's payload bytes, once ``ready``.
    ready : out; ``length`` has been counted (low from ``start`` until then).

    Parameters
    ----------
    config : Config
        The device's (``rows``, ``cols``, ``link_bytes``).
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "start": In(1), "stored": In(1), "n": In(16), "m": In(16),
            "on": Out(1), "length": Out(32), "ready": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        lb, cols = cfg.link_bytes, cfg.cols
        log_lb = lb.bit_length() - 1
        tile_words = protocol.words(4 * cols, lb)
        left = Signal(16)                       # columns of M not counted yet
        row_words = Signal(range(-(-0xFFFF // cols) * tile_words + 1))
        with m.If(self.start):
            m.d.sync += [self.on.eq(self.stored & (self.n <= cfg.rows)), self.ready.eq(0),
                         left.eq(self.m), row_words.eq(0)]
        with m.Elif(left >= 16 * cols):
            m.d.sync += [left.eq(left - 16 * cols), row_words.eq(row_words + 16 * tile_words)]
        with m.Elif(left != 0):
            take = Mux(left > cols, cols, left)
            m.d.sync += [left.eq(left - take),
                         row_words.eq(row_words + (((take << 2) + lb - 1) >> log_lb))]
        with m.Else():
            m.d.sync += self.ready.eq(1)
        # N (at most rows when ``on``) times the row's words, as shifts and adds of N's few bits.
        n = self.n[:cfg.rows.bit_length()]
        m.d.comb += self.length.eq(sum(Mux(n[i], row_words << i, 0)
                                       for i in range(len(n))) << log_lb)
        return m
