"""A skid buffer: a two-entry register stage that cuts a stream's ready path as well as its data."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Register stage with registered ``i.ready``.

    A one-entry register stage registers valid and payload, but its ``i.ready`` is ``~o.valid |
    o.ready``: whatever computes ``o.ready`` reaches through it to the producer (a FIFO's block RAM read
    enable, say). Here ``i.ready`` comes straight from a flip-flop. The stage has a *main* entry,
    which drives ``o``, and a *skid* entry, which catches the one beat that arrives in the cycle
    the consumer first holds ``o.ready`` low. ``i.ready`` is "the skid entry is empty"; a full skid
    entry moves to the main entry as soon as that frees. A stream flows through at one beat per
    cycle, in order, and no beat is lost or repeated.

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
        skid_valid = Signal()
        skid = Signal.like(self.o.payload)
        m.d.comb += self.i.ready.eq(~skid_valid)

        main_free = ~self.o.valid | self.o.ready       # the main entry is empty or leaves now
        with m.If(main_free):
            with m.If(skid_valid):
                # The skid entry moves up; i.ready is low this cycle, so nothing arrives.
                m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(skid), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += self.o.valid.eq(self.i.valid)
                with m.If(self.i.valid):
                    m.d.sync += self.o.payload.eq(self.i.payload)
        with m.Elif(self.i.valid & ~skid_valid):
            # The main entry is held: the arriving beat waits in the skid entry.
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
