"""A pipeline register on a stream: cuts the combinational path of payload and valid."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamRegister"]


class StreamRegister(wiring.Component):
    """One-entry register stage between two streams.

    ``o.valid`` and ``o.payload`` come straight from flip-flops, so whatever drives ``i`` (a block
    RAM's read data, say) gets a cycle of its own. ``i.ready`` is ``~o.valid | o.ready``: the stage
    takes a new beat when it is empty or its beat leaves in the same cycle, so a stream flows
    through at one beat per cycle.

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
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.ready):
            m.d.sync += self.o.valid.eq(self.i.valid)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += self.o.payload.eq(self.i.payload)
        return m
