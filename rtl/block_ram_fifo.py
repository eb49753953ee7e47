"""A deep FIFO in a registered block RAM, whose read data leave from a small queue, not from the
RAM's clock-to-out."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from .block_ram import BlockRam

__all__ = ["BlockRamFifo"]

# Words read from the RAM but not yet taken: in flight in the RAM's two read cycles, or waiting
# in the output queue. Four keeps a word leaving every cycle.
QUEUE_WORDS = 4


class BlockRamFifo(wiring.Component):
    """``depth`` words of ``width`` bits, first in first out.

    Words are written into a `BlockRam` with registered read data (on ECP5 the DP16KD's own
    output register, see there) and read from it ahead of the consumer into a queue of
    `QUEUE_WORDS` words, which ``r`` shows. Amaranth's ``SyncFIFOBuffered`` shows the RAM's read
    port itself, so an ECP5 DP16KD's 5.8 ns clock-to-out plus a route started the ULX3S-85F's
    critical path (94.3 MHz). A read is issued only while the queue has room for it and for
    the reads in flight, so the queue never overflows; a word written is read from the RAM
    at the earliest in the next cycle (never in the cycle it is written).

    It holds up to ``depth + QUEUE_WORDS`` words; ``w.ready`` is low when the RAM part is full.
    A word is at ``r`` three cycles after it is written, and one leaves every cycle.
    ``empty`` says no word is anywhere inside.
    """

    def __init__(self, width, depth):
        if depth < 2:
            raise ValueError(f"depth must be at least 2, not {depth}")
        self._width, self._depth = width, depth
        super().__init__({
            "w": In(stream.Signature(width)),
            "r": Out(stream.Signature(width)),
            "empty": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        m.submodules.ram = ram = BlockRam(self._width, depth, registered=True)
        m.submodules.queue = queue = fifo.SyncFIFO(width=self._width, depth=QUEUE_WORDS)
        connect(m, queue.r_stream, wiring.flipped(self.r))

        w_ptr = Signal(range(depth))
        r_ptr = Signal(range(depth))
        count = Signal(range(depth + 1))        # words in the RAM not yet read
        write = Signal()
        issue = Signal()
        m.d.comb += [
            self.w.ready.eq(count != depth),
            write.eq(self.w.valid & self.w.ready),
            ram.w_addr.eq(w_ptr),
            ram.w_data.eq(self.w.payload),
            ram.w_en.eq(write),
            ram.r_addr.eq(r_ptr),
        ]
        # Reads in flight: one bit per cycle of the RAM's read latency.
        flight = Signal(ram.latency)
        m.d.sync += flight.eq(Cat(issue, flight[:-1]))
        in_flight = sum(flight[i] for i in range(ram.latency))
        m.d.comb += [
            issue.eq((count != 0) & (queue.level + in_flight < QUEUE_WORDS)),
            queue.w_data.eq(ram.r_data),
            queue.w_en.eq(flight[-1]),
        ]
        with m.If(write):
            m.d.sync += w_ptr.eq(Mux(w_ptr == depth - 1, 0, w_ptr + 1))
        with m.If(issue):
            m.d.sync += r_ptr.eq(Mux(r_ptr == depth - 1, 0, r_ptr + 1))
        m.d.sync += count.eq(count + write - issue)
        m.d.comb += self.empty.eq((count == 0) & (flight == 0) & ~queue.r_rdy)
        return m
