"""A gateware player of a DRAM controller's init sequence: Wishbone writes from a ROM.

LiteDRAM's core has no init sequencer of its own; with no CPU, its control bus must be written
the way LiteX's BIOS would (`sim.dram_core` computes the writes from ``litedram.init`` at
generation time and keeps them in the core's JSON). `DramInit` plays them after reset, one
Wishbone classic write at a time, waiting the given number of cycles after each, then raises
``done``. The last writes hand the DFI to the controller and set the core's ``init_done``.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import Out

from .dram_controller import WishboneSignature

__all__ = ["DramInit"]


class DramInit(wiring.Component):
    """Plays ``writes`` on ``bus`` once after reset.

    Parameters
    ----------
    writes : list of (int, int, int)
        (word address, data, cycles to wait after the write's ack) for each write, in order.
    addr_width : int
        Width of the bus's word address.
    data_width : int
        Width of the bus's data (every write enables all of its bytes).

    Attributes
    ----------
    bus : Out(WishboneSignature(addr_width, data_width))
        The control bus, as its initiator.
    done : Out(1)
        High once every write has been acked and its wait has passed.
    error : Out(1)
        High (from then on) if the bus answered a write with ``err`` instead of ``ack``.
    """

    def __init__(self, writes, *, addr_width=30, data_width=32):
        writes = [tuple(w) for w in writes]
        if not writes:
            raise ValueError("writes must not be empty")
        for adr, value, wait in writes:
            if not (0 <= adr < 2**addr_width and 0 <= value < 2**data_width and wait >= 0):
                raise ValueError(f"write ({adr:#x}, {value:#x}, {wait}) does not fit a "
                                 f"{addr_width}-bit address and {data_width}-bit data")
        self._writes = writes
        self._entry = data.StructLayout({
            "adr": addr_width, "data": data_width,
            "wait": max(1, max(w for _, _, w in writes).bit_length())})
        super().__init__({
            "bus": Out(WishboneSignature(addr_width, data_width)),
            "done": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus

        m.submodules.rom = rom = memory.Memory(
            shape=self._entry, depth=len(self._writes),
            init=[{"adr": a, "data": d, "wait": w} for a, d, w in self._writes])
        read = rom.read_port(domain="comb")
        index = Signal(range(len(self._writes)))
        wait = Signal.like(read.data.wait)
        m.d.comb += read.addr.eq(index)

        m.d.comb += [
            bus.adr.eq(read.data.adr),
            bus.dat_w.eq(read.data.data),
            bus.sel.eq(-1),
            bus.we.eq(1),
        ]
        with m.FSM():
            with m.State("WRITE"):
                m.d.comb += [bus.cyc.eq(1), bus.stb.eq(1)]
                with m.If(bus.ack | bus.err):
                    m.d.sync += wait.eq(read.data.wait)
                    m.d.sync += self.error.eq(self.error | bus.err)
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(wait != 0):
                    m.d.sync += wait.eq(wait - 1)
                with m.Elif(index == len(self._writes) - 1):
                    m.next = "DONE"
                with m.Else():
                    m.d.sync += index.eq(index + 1)
                    m.next = "WRITE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
        return m
