"""The accelerator with its DRAM: `Accelerator` and a DRAM controller core behind its ``dram`` port.

A device with DRAM (`Config.dram_mib`) has two more ports than one without: ``dram``, a DRAM
controller's native port as its user sees it, and ``dram_ready``. `AcceleratorWithDram` closes
them on a `DramController` (a generated LiteDRAM core, `sim.dram_core`) whose init sequence a
`DramInit` plays after reset, as `tests/dram_bench.py`'s test top does, and leaves the top-level
ports of an `Accelerator` without DRAM, so that whatever wraps one (the simulated board's
``sim/board_top.v``) wraps this one unchanged. On a board (the ECPIX-5's core, given its DDR3
pins) it has the controller's clock ports as well: the board runs its ``sync`` domain, and
with it the whole accelerator, in the core's ``user_clk`` (`boards.dram_top`).
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import connect, flipped

from .dram_access import DATA_WIDTH, dram_addr_width
from .dram_controller import DramController
from .dram_init import DramInit, init_writes
from .top import Accelerator

__all__ = ["AcceleratorWithDram"]

_LINK_PORTS = ("link_rx", "link_tx", "rx_empty", "line_errors")
_CLOCK_PORTS = ("clk_in", "user_clk", "user_rst", "pll_locked")


class AcceleratorWithDram(wiring.Component):
    """An `Accelerator` whose ``dram`` port is a `DramController`'s, initialized by a `DramInit`.

    Parameters
    ----------
    config : Config
        The accelerator's configuration; ``dram_mib`` must be nonzero and the DRAM of the core's
        size (its native port's address width must be `dram_access.dram_addr_width`).
    core_info : dict
        The controller core's description (`sim.dram_core.DramCore.info`).
    pads : PortGroup or None
        A board core's DDR3 pins (`DramController`'s ``pads``).
    read_leveling : sequence of (int, int) or None
        A board core's read bitslip and delay per byte lane (`dram_init.init_writes`).

    Attributes
    ----------
    link_rx, link_tx, rx_empty, line_errors
        As `Accelerator`'s.
    clk_in, user_clk, user_rst, pll_locked
        With ``pads`` only: the controller's (`DramController`).

    The accelerator's ``dram_ready`` is high once the core says its init is done and the
    player has passed its last write's wait (the core's ``init_done`` is set by that write).
    The core's ``init_error`` (which only a memory test would set) and the player's ``error``
    (a control-bus write answered with ``err``) are not used: the simulation core sets neither.
    """

    def __init__(self, config, core_info, *, pads=None, read_leveling=None):
        if not config.dram_mib:
            raise ValueError(f"AcceleratorWithDram needs a configuration with DRAM (dram_mib > "
                             f"0), not {config.label()}")
        # The core's native port, as `DramController.from_info` reads it (checked before any
        # component is made).
        ports = core_info["ports"]
        addr_width = ports["user_port_native_0_cmd_addr"][1]
        data_width = ports["user_port_native_0_rdata_data"][1]
        want = dram_addr_width(config)
        if addr_width != want:
            size = (data_width // 8 << addr_width) >> 20
            raise ValueError(f"the DRAM core has {size} MiB ({addr_width}-bit word addresses); "
                             f"the configuration says dram_mib = {config.dram_mib} ({want}-bit "
                             "word addresses)")
        if data_width != DATA_WIDTH:
            raise ValueError(f"the DRAM core's native port moves {data_width}-bit words; the "
                             f"accelerator's moves {DATA_WIDTH}-bit words")
        self.config = config
        self._info = core_info
        self._writes = [write[:3] for write in init_writes(core_info, read_leveling)]
        self._controller = DramController.from_info(core_info, pads=pads)
        self._accelerator = Accelerator(config)
        members = self._accelerator.signature.members
        clocks = self._controller.signature.members if pads is not None else {}
        super().__init__({**{name: members[name] for name in _LINK_PORTS},
                          **{name: clocks[name] for name in _CLOCK_PORTS if name in clocks}})

    def elaborate(self, platform):
        m = Module()
        m.submodules.accelerator = acc = self._accelerator
        m.submodules.controller = controller = self._controller
        m.submodules.init = init = DramInit(
            self._writes, addr_width=self._info["ports"]["wb_ctrl_adr"][1])

        connect(m, flipped(self.link_rx), acc.link_rx)
        connect(m, acc.link_tx, flipped(self.link_tx))
        connect(m, flipped(self.line_errors), acc.line_errors)
        m.d.comb += self.rx_empty.eq(acc.rx_empty)
        if "clk_in" in self.signature.members:
            m.d.comb += [controller.clk_in.eq(self.clk_in), self.user_clk.eq(controller.user_clk),
                         self.user_rst.eq(controller.user_rst),
                         self.pll_locked.eq(controller.pll_locked)]

        connect(m, init.bus, controller.ctrl)
        connect(m, acc.dram.cmd, controller.cmd)
        connect(m, acc.dram.wdata, controller.wdata)
        connect(m, controller.rdata, acc.dram.rdata)
        m.d.comb += acc.dram_ready.eq(controller.init_done & init.done)
        return m
