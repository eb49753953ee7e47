"""LOAD_A's size check: does ceil(N / rows) × K fit the activation buffer?"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LoadSizeCheck"]


class LoadSizeCheck(wiring.Component):
    """Checks ceil(N / rows) * K <= act_depth sequentially (no divider or multiplier in the
    fabric): rows of A are counted off a tile at a time while the words they need are added
    up; it stops as soon as the buffer would overflow, so it takes at most
    min(ceil(N / rows), act_depth // K + 1) steps.

    Ports
    -----
    start : in; begin with ``n`` (1 .. 65535) and ``k`` (1 .. max_k), which hold until done.
    step : in; count off the current row tile (only while neither ``last`` nor ``over``).
    last : out; the current tile is the last: A fits.
    over : out; A does not fit.
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "start": In(1),
            "n": In(16),
            "k": In(range(config.max_k + 1)),
            "step": In(1),
            "last": Out(1),
            "over": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        rows_left = Signal(17)                                      # from the current tile on
        room = Signal(range(-cfg.max_k - 1, cfg.act_depth + 1))     # buffer words left after it
        with m.If(self.start):
            m.d.sync += [rows_left.eq(self.n), room.eq(cfg.act_depth - self.k),
                         self.last.eq(self.n <= cfg.rows), self.over.eq(self.k > cfg.act_depth)]
        with m.Elif(self.step):
            m.d.sync += [
                rows_left.eq(rows_left - cfg.rows),
                room.eq(room - self.k),
                self.over.eq((room - self.k)[-1]),
                self.last.eq(rows_left <= 2 * cfg.rows),
            ]
        return m
