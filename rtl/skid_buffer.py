"""A skid buffer: a two-entry register stage that cuts a stream's ready path as well as its data."""

from amaranth.hdl import Module, Mux, Signal
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

        # Each register's enable is made of this stage's own flip-flops and ``o.ready`` only,
        # never of ``i.valid``: a wide payload register whose enable came from the producer's
        # handshake logic was the ULX3S-85F's critical path (reports/build_history.md). A
        # register loads whenever it may; ``o.valid`` and ``skid_valid`` say whether what it
        # holds is a beat.
        main_free = ~self.o.valid | self.o.ready       # the main entry is empty or leaves now
        with m.If(main_free):
            # The skid entry moves up if it is full (i.ready is low then, so nothing arrives),
            # else the arriving beat, if any, goes straight to the main entry.
            m.d.sync += [self.o.valid.eq(skid_valid | self.i.valid),
                         self.o.payload.eq(Mux(skid_valid, skid, self.i.payload)),
                         skid_valid.eq(0)]
        with m.Elif(self.i.valid & ~skid_valid):
            # The main entry is held: the arriving beat waits in the skid entry.
            m.d.sync += skid_valid.eq(1)
        with m.If(~skid_valid):
            m.d.sync += skid.eq(self.i.payload)
        return m
