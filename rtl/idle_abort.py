"""Idle abort: a frame that stops arriving is dropped after ``abort_cycles`` cycles of waiting."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["IdleAbort"]


class IdleAbort(wiring.Component):
    """Sits between the link's received words and the command decoder.

    It counts the cycles in which the decoder is inside a frame (not ``idle``) and ready for a
    word that is not there; after ``abort_cycles`` of them in a row it pulses ``abort``. If a
    LOAD_A or GEMM payload was being taken (``routing``), the command is ``aborted``: from then
    until the router has taken the rest of the payload and its CRC word, words are made up
    (``o.valid`` without ``i.valid``; their contents do not matter, the command's results are
    void), so every block behind the decoder finishes the command as it would any other and no
    state has to be reset. A word that does arrive meanwhile is taken as one of them.

    Ports
    -----
    i : stream of link words in (from the link adapter).
    o : stream of link words out (to the parser and the router); ``i``'s, plus the made-up ones.
    idle : in; the decoder waits for a header and holds no part of one.
    routing : in; the router is taking a payload (or its CRC word).
    start : in; a command has been accepted (``aborted`` drops).
    abort : out; a one-cycle strobe: drop the frame in hand.
    aborted : out; the current command was aborted (until the next ``start``).
    """

    def __init__(self, config):
        self._config = config
        width = 8 * config.link_bytes
        super().__init__({
            "i": In(stream.Signature(width)),
            "o": Out(stream.Signature(width)),
            "idle": In(1),
            "routing": In(1),
            "start": In(1),
            "abort": Out(1),
            "aborted": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        limit = self._config.abort_cycles
        fill = Signal()
        m.d.comb += [
            fill.eq(self.aborted & self.routing),
            self.o.payload.eq(self.i.payload),
            self.o.valid.eq(self.i.valid | fill),
            self.i.ready.eq(self.o.ready),
        ]
        # Registered (timing: the decoder's ready is on its longest paths); one cycle late.
        waiting = Signal()
        m.d.sync += waiting.eq(~self.idle & self.o.ready & ~self.i.valid & ~fill)
        count = Signal(range(limit))
        with m.If(waiting & (count != limit - 1)):
            m.d.sync += count.eq(count + 1)
        with m.Else():
            m.d.sync += count.eq(0)
        m.d.sync += self.abort.eq(waiting & (count == limit - 1))
        with m.If(self.start):
            m.d.sync += self.aborted.eq(0)
        with m.Elif(self.abort & self.routing):
            m.d.sync += self.aborted.eq(1)
        return m
