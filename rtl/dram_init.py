"""A gateware player of a DRAM controller's init sequence: Wishbone writes from a ROM.

LiteDRAM's core has no init sequencer of its own; with no CPU, its control bus must be written
the way LiteX's BIOS would (`sim.dram_core` computes the writes from ``litedram.init`` at
generation time and keeps them in the core's JSON). `DramInit` plays them after reset, one
Wishbone classic write at a time, waiting the given number of cycles after each, then raises
``done``. The last writes hand the DFI to the controller and set the core's ``init_done``.

The ECP5 PHY (``ECP5DDRPHY``) also wants read leveling: per byte lane, a read bitslip (which
system-clock phase the burst is taken in) and a read delay (DQS-to-DQ taps). LiteX's BIOS finds
them by a search (about 10^4 control-bus accesses of write/read/compare). `init_writes` does not
search: it sets fixed values, given per board, with the writes the BIOS uses to set the ones it
found (``sdram_leveling_action``: select the lane, reset, increment, deselect and pulse every
DQSBUFM's pause), before handing the DFI to the controller. Nothing checks them: values that do
not fit the board read garbage, and ``init_done`` rises all the same.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import Out

from .dram_controller import WishboneSignature

__all__ = ["DramInit", "init_writes", "read_leveling_writes"]


def read_leveling_writes(info, lanes):
    """The control-bus writes that set each byte lane's read bitslip and delay.

    Parameters
    ----------
    info : dict
        The core's description (`sim.dram_core.DramCore.info`) with its ``read_leveling``
        (lanes, bitslips, delays) and ``csr`` addresses.
    lanes : sequence of (int, int)
        (bitslip, delay) of each byte lane, lane 0 first.

    Returns
    -------
    list of [word address, data, wait, what]
    """
    leveling, csr = info["read_leveling"], info["csr"]
    if len(lanes) != leveling["modules"]:
        raise ValueError(f"read leveling needs (bitslip, delay) for each of the core's "
                         f"{leveling['modules']} byte lanes, not {list(lanes)!r}")
    writes = []

    def action(lane, register, what):
        # LiteX's sdram_leveling_action: select, act, deselect, then pulse every lane's select
        # (DQSBUFM PAUSE) so that all DQS buffers take their new settings.
        for name, value, note in (("ddrphy_dly_sel", 1 << lane, f"select lane {lane}"),
                                  (register, 1, what), ("ddrphy_dly_sel", 0, "deselect"),
                                  ("ddrphy_dly_sel", 0xff, "pause every DQS buffer"),
                                  ("ddrphy_dly_sel", 0, "resume")):
            writes.append([csr[name] >> 2, value, 0, note])

    for lane, (bitslip, delay) in enumerate(lanes):
        if not (0 <= bitslip < leveling["bitslips"] and 0 <= delay < leveling["delays"]):
            raise ValueError(f"lane {lane}: bitslip {bitslip} and delay {delay} must be below "
                             f"{leveling['bitslips']} and {leveling['delays']}")
        action(lane, "ddrphy_rdly_dq_rst", f"lane {lane}: delay 0")
        action(lane, "ddrphy_rdly_dq_bitslip_rst", f"lane {lane}: bitslip 0")
        for step in range(bitslip):
            action(lane, "ddrphy_rdly_dq_bitslip", f"lane {lane}: bitslip {step + 1}")
        for step in range(delay):
            action(lane, "ddrphy_rdly_dq_inc", f"lane {lane}: delay {step + 1}")
    return writes


def init_writes(info, read_leveling=None):
    """The core's init sequence (``info["init"]``), with `read_leveling_writes` for
    ``read_leveling`` before the DFI goes to the controller when the core's PHY levels reads.
    A core that levels reads needs ``read_leveling``; one that does not refuses it."""
    writes = [list(w) for w in info["init"]]
    if ("read_leveling" in info) != (read_leveling is not None):
        raise ValueError("read leveling values are needed for a core whose PHY levels reads "
                         "(ECP5DDRPHY), and only for one")
    if read_leveling is None:
        return writes
    handover = next(i for i, w in enumerate(writes) if w[3] == "hardware control")
    return writes[:handover] + read_leveling_writes(info, read_leveling) + writes[handover:]


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
