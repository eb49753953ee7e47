"""A register stage for a slow consumer of wide beats: its wide register's one enable is a flip-flop."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RowHold"]


class RowHold(wiring.Component):
    """Holds one beat for a consumer that takes a long time over each (the reply framer sending a
    result row a byte at a time).

    A `SkidBuffer` registers ``i.ready``, but its registers are still loaded when the consumer
    says ``o.ready``: whatever computes that drives the enable of every payload bit (512 of them
    for a row of 16 sums), and on a large part those flip-flops sit where the row's sums come
    from, across the die. Here the payload register is loaded only by ``take``, a flip-flop,
    which is also ``i.ready``; ``o.ready`` only clears ``o.valid``. The cost is rate: a beat
    takes ``take`` one cycle after it arrives and an empty stage, so a beat passes at most once
    per three cycles, far faster than a row leaves a serial link.

    Ports
    -----
    i : stream in of ``shape``; ``i.ready`` is a flip-flop (``take``).
    o : stream out of ``shape``, payload and valid from flip-flops; the payload is loaded only
        when ``i.ready`` is high.

    Parameters
    ----------
    shape : shape-like
        The payload shape.
    """

    def __init__(self, shape):
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        take = Signal()
        m.d.comb += self.i.ready.eq(take)
        # A beat waiting on an empty stage is taken in the next cycle (valid holds until ready).
        m.d.sync += take.eq(self.i.valid & ~self.o.valid & ~take)
        with m.If(take):
            m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
