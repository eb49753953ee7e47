"""LiteDRAM's DRAM controller (a generated Verilog core, `sim.dram_core`) as an Amaranth component.

The core's native user port becomes three streams and its control bus a declared Wishbone
signature; nothing here imports LiteX: the widths come from the constructor (`from_info` reads
them from the core's JSON description). Two cores are known (`from_info` refuses a core whose
ports differ from the one it is taken for):

* the simulation core (LiteDRAM's DRAM model inside), run from the controller's ``domain``;
* the ECPIX-5 core (``ECP5DDRPHY``, with its own PLL): it takes the board's 100 MHz on
  ``clk_in`` and makes the 75 MHz ``user_clk`` (and ``user_rst``) that its port and control bus
  run in; its DDR3 pins are given as the amaranth-boards ``ddr3`` resource, requested raw
  (``pads``). That resource has no ``cs_n`` and no ``reset_n``: the core's outputs for them are
  left unconnected (the board ties chip select and the DRAM's reset itself).

The port's rules, which LiteDRAM's own DMA frontends follow:

* ``cmd`` carries one 128-bit word (one BL8 burst) per beat; ``addr`` counts words.
* ``wdata.ready`` follows an accepted write command after a fixed latency, and the core takes
  ``wdata.payload`` whenever ``ready`` is high, valid or not: the data of each write must be on
  ``wdata`` (in command order) no later than its command is offered.
* ``rdata.valid`` is a fixed-latency pipeline of accepted read commands and LiteDRAM ignores
  ``rdata.ready`` (here the stream is ``always_ready``): whoever issues reads must have room for
  every read in flight, reserved before the command is offered (LiteDRAM's ``LiteDRAMDMAReader``
  does it with a reservation FIFO).
* Read and write data come back in command order (the crossbar holds a port's commands to one
  bank until its other banks have none pending).
* Nothing moves before ``init_done``: the core blocks the port until the control bus writes it
  (`rtl.dram_init.DramInit`).
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import data, io, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DramController", "WishboneSignature", "check_widths", "cmd_layout", "wdata_layout"]


def check_widths(data_width, **widths):
    """Refuse widths that are not positive integers, and a ``data_width`` that is not whole
    bytes (the checks every DRAM component's constructor makes)."""
    for name, value in (("data_width", data_width), *widths.items()):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if data_width % 8:
        raise ValueError(f"data_width must be a whole number of bytes, not {data_width}")


def cmd_layout(addr_width):
    """A native-port command: ``we`` (1 = write) and the word address."""
    return data.StructLayout({"we": 1, "addr": addr_width})


def wdata_layout(data_width):
    """A native-port write beat: the data and one write enable per byte."""
    return data.StructLayout({"data": data_width, "we": data_width // 8})


class WishboneSignature(wiring.Signature):
    """A Wishbone classic bus, initiator's view, without bursts (``cti`` and ``bte`` are 0).

    Parameters
    ----------
    addr_width : int
        Width of ``adr``, a word address.
    data_width : int
        Width of ``dat_w``/``dat_r``; ``sel`` has one bit per byte.

    Members
    -------
    cyc, stb, we : Out(1)
    adr : Out(addr_width)
    dat_w : Out(data_width)
    sel : Out(data_width // 8)
    dat_r : In(data_width)
    ack, err : In(1)
    """

    def __init__(self, addr_width, data_width=32):
        check_widths(data_width, addr_width=addr_width)
        self.addr_width, self.data_width = addr_width, data_width
        super().__init__({
            "cyc": Out(1), "stb": Out(1), "we": Out(1), "adr": Out(addr_width),
            "dat_w": Out(data_width), "sel": Out(data_width // 8),
            "dat_r": In(data_width), "ack": In(1), "err": In(1),
        })

    def __eq__(self, other):
        return (isinstance(other, WishboneSignature) and other.addr_width == self.addr_width
                and other.data_width == self.data_width)

    def __repr__(self):
        return f"WishboneSignature({self.addr_width}, {self.data_width})"


def _signature(addr_width, data_width, ctrl_addr_width, own_clock=False):
    members = {
        "cmd": In(stream.Signature(cmd_layout(addr_width))),
        "wdata": In(stream.Signature(wdata_layout(data_width))),
        "rdata": Out(stream.Signature(data_width, always_ready=True)),
        "ctrl": In(WishboneSignature(ctrl_addr_width)),
        "init_done": Out(1),
        "init_error": Out(1),
    }
    if own_clock:
        members.update({"clk_in": In(1), "user_clk": Out(1), "user_rst": Out(1),
                        "pll_locked": Out(1)})
    return wiring.Signature(members)


# The ECPIX-5 core's DDR3 ports: {core port: (direction, ``ddr3`` subsignal)}. The core drives
# the pins' levels (``ras_n`` low is a command): the raw pins are connected, the resource's
# inversions (`PinsN`) are not applied. A differential pair is its P pin (the core's ``_n`` ports
# are unused inputs; the P pin's SSTL15D I/O type makes the pair).
DDR3_PADS = {
    "ddram_a": ("o", "a"), "ddram_ba": ("o", "ba"), "ddram_ras_n": ("o", "ras"),
    "ddram_cas_n": ("o", "cas"), "ddram_we_n": ("o", "we"), "ddram_cke": ("o", "clk_en"),
    "ddram_odt": ("o", "odt"), "ddram_dm": ("o", "dm"), "ddram_clk_p": ("o", "clk"),
    "ddram_dq": ("io", "dq"), "ddram_dqs_p": ("io", "dqs"),
}
DDR3_UNUSED = {"ddram_clk_n": ("i", "clk"), "ddram_dqs_n": ("i", "dqs"), "ddram_cs_n": ("o", None),
               "ddram_reset_n": ("o", None)}


def _pad(port):
    """The pins of a port of a raw resource: a single-ended port's, a differential one's P."""
    return port.p if isinstance(port, io.DifferentialPort) else port.io


def _connections(ports, domain, pads=None):
    """{core port: (direction, value)} for every port of the core, ``ports`` being the
    controller (or an interface of its signature): the simulation core's when ``pads`` is None,
    else the ECPIX-5 core's, its DDR3 pins from ``pads`` (the ``ddr3`` resource)."""
    if pads is None:
        clocking = {
            "clk": ("i", ClockSignal(domain)),
            "sim_trace": ("i", Const(0, 1)),
            "user_clk": ("o", Signal()),
            "user_rst": ("o", Signal()),
        }
    else:
        clocking = {
            "clk": ("i", ports.clk_in),
            "rst": ("i", Const(0, 1)),
            "pll_locked": ("o", ports.pll_locked),
            "user_clk": ("o", ports.user_clk),
            "user_rst": ("o", ports.user_rst),
        }
        clocking.update({name: (direction, _pad(getattr(pads, pin)))
                         for name, (direction, pin) in DDR3_PADS.items()})
        # An unused input as wide as its pair's P pins; an unused output goes nowhere.
        clocking.update({name: (direction, Const(0, len(getattr(pads, pair))) if pair else Signal())
                         for name, (direction, pair) in DDR3_UNUSED.items()})
    return _user_ports(ports, clocking)


def _user_ports(ports, clocking):
    port, ctrl = "user_port_native_0", ports.ctrl
    return {
        **clocking,
        "init_done": ("o", ports.init_done),
        "init_error": ("o", ports.init_error),
        f"{port}_cmd_valid": ("i", ports.cmd.valid),
        f"{port}_cmd_ready": ("o", ports.cmd.ready),
        f"{port}_cmd_we": ("i", ports.cmd.payload.we),
        f"{port}_cmd_addr": ("i", ports.cmd.payload.addr),
        f"{port}_wdata_valid": ("i", ports.wdata.valid),
        f"{port}_wdata_ready": ("o", ports.wdata.ready),
        f"{port}_wdata_we": ("i", ports.wdata.payload.we),
        f"{port}_wdata_data": ("i", ports.wdata.payload.data),
        f"{port}_rdata_valid": ("o", ports.rdata.valid),
        f"{port}_rdata_ready": ("i", Const(1, 1)),
        f"{port}_rdata_data": ("o", ports.rdata.payload),
        "wb_ctrl_cyc": ("i", ctrl.cyc),
        "wb_ctrl_stb": ("i", ctrl.stb),
        "wb_ctrl_we": ("i", ctrl.we),
        "wb_ctrl_adr": ("i", ctrl.adr),
        "wb_ctrl_dat_w": ("i", ctrl.dat_w),
        "wb_ctrl_sel": ("i", ctrl.sel),
        "wb_ctrl_cti": ("i", Const(0, 3)),
        "wb_ctrl_bte": ("i", Const(0, 2)),
        "wb_ctrl_dat_r": ("o", ctrl.dat_r),
        "wb_ctrl_ack": ("o", ctrl.ack),
        "wb_ctrl_err": ("o", ctrl.err),
    }


def _check_ports(connections, core_ports):
    # The core declares its bidirectional pins (DQ, DQS) ``input``: LiteX lowers their tristates
    # to TRELLIS_IO cells inside it.
    got = {name: ({"i": "input", "o": "output"}.get(d, core_ports.get(name, ["inout"])[0]),
                  len(v)) for name, (d, v) in connections.items()}
    want = {name: tuple(entry) for name, entry in core_ports.items()}
    wrong = sorted(name for name in set(got) | set(want) if got.get(name) != want.get(name))
    if wrong:
        raise ValueError("litedram_core's ports and DramController's connections differ: "
                         + ", ".join(f"{n} (core {want.get(n)}, here {got.get(n)})"
                                     for n in wrong))


class DramController(wiring.Component):
    """The ``litedram_core`` Verilog module with its native user port as streams.

    Parameters
    ----------
    addr_width : int
        Width of the native port's word address (25 for 512 MiB of 128-bit words).
    data_width : int
        Width of a native port word (128: one BL8 burst of a 16-bit DDR3 bus).
    ctrl_addr_width : int
        Width of the control bus's word address (30).
    domain : str
        The clock domain of the port and the control bus, for the simulation core, which has a
        ``clk`` input and is run from this domain's clock (its ``user_clk`` output is that
        clock, its ``user_rst`` a one-cycle power-on reset; neither is used).
    pads : PortGroup or None
        The ECPIX-5 core's DDR3 pins: amaranth-boards' ``ddr3`` resource, requested with
        ``dir="-"``. With pads the controller has its own clock: its port and control bus run
        in ``user_clk`` (75 MHz, from the core's PLL), whichever domain the user calls that;
        ``domain`` is not used.

    Attributes
    ----------
    cmd : In(stream.Signature(cmd_layout(addr_width)))
        Commands: one read or write of one word each.
    wdata : In(stream.Signature(wdata_layout(data_width)))
        Write data and byte enables, in write-command order (see the module's notes).
    rdata : Out(stream.Signature(data_width, always_ready=True))
        Read data, in read-command order; never stalls (see the module's notes).
    ctrl : In(WishboneSignature(ctrl_addr_width))
        The core's control and status registers (init sequence, DFII).
    init_done, init_error : Out(1)
        The core's status bits, as the control bus last wrote them.
    clk_in : In(1)
        With ``pads``: the board's oscillator (100 MHz), the core's PLL's input.
    user_clk, user_rst : Out(1)
        With ``pads``: the core's system clock (75 MHz) and its reset (held until the PLL has
        locked and the PHY's clock bring-up is done); everything on the port runs in it.
    pll_locked : Out(1)
        With ``pads``: the core's PLL has locked.
    """

    def __init__(self, *, addr_width=25, data_width=128, ctrl_addr_width=30, domain="sync",
                 pads=None):
        check_widths(data_width, addr_width=addr_width, ctrl_addr_width=ctrl_addr_width)
        self._domain, self._pads = domain, pads
        super().__init__(_signature(addr_width, data_width, ctrl_addr_width,
                                    own_clock=pads is not None))

    @classmethod
    def from_info(cls, info, *, pads=None, **kwargs):
        """The controller for a core described by ``info`` (`sim.dram_core.DramCore.info`),
        after checking that every port of the core is connected, at its width (a core with DDR3
        pins needs ``pads``)."""
        ports = info["ports"]
        if ("ddram_dq" in ports) != (pads is not None):
            raise ValueError("a core with DDR3 pins needs the board's ddr3 resource (pads), and "
                             "only such a core takes pads")
        widths = dict(addr_width=ports["user_port_native_0_cmd_addr"][1],
                      data_width=ports["user_port_native_0_rdata_data"][1],
                      ctrl_addr_width=ports["wb_ctrl_adr"][1])
        interface = _signature(**widths, own_clock=pads is not None).create()
        _check_ports(_connections(interface, "sync", pads), ports)
        return cls(**widths, pads=pads, **kwargs)

    def elaborate(self, platform):
        m = Module()
        connections = _connections(self, self._domain, self._pads)
        m.submodules.core = Instance("litedram_core", **{
            f"{direction}_{name}": value for name, (direction, value) in connections.items()})
        return m

