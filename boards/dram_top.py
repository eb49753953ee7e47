"""A board with its DRAM: the LiteDRAM controller on the board's DDR3 pins, the accelerator in
the controller's clock, and the UART's bytes packed into the accelerator's 16-byte link words.

Clocking: the controller core (`sim.dram_core`, kind ``"ecpix5"``) has its own CRG. Its PLL takes
the board's 100 MHz oscillator and makes the DRAM clock (sys2x, 150 MHz: DDR3-300) and a 25 MHz
init clock; the system clock (75 MHz) is sys2x divided by 2 (CLKDIVF), and its native port and
control bus run in it. The whole accelerator runs in that clock too: the ``sync`` domain is the
core's ``user_clk``, its reset the core's ``user_rst`` (held until the PLL has locked and the
PHY's clock bring-up is done). One domain, no clock-domain crossing; the board makes no PLL of
its own. What it costs: the array runs at 75 MHz instead of the 100 MHz of the ECPIX-5's
bitstream without DRAM, a quarter less peak compute, and the UART's 3 Mbaud is divisor 25
exactly.
"""

import dataclasses

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, ResetSignal
from amaranth.lib import io
from amaranth.lib.wiring import connect

from systolica.config import Config
from systolica.rtl.accelerator_dram import AcceleratorWithDram
from systolica.rtl.link_width import BytePacker, ByteSerializer
from systolica.rtl.uart import UARTReceiver, UARTTransmitter, baud_divisor
from systolica.sim import dram_core

from .board import ABORT_SECONDS, Board
from .top import uart_pins_and_leds

__all__ = ["DramBoard", "DramBoardTop"]


@dataclasses.dataclass(frozen=True)
class DramBoard(Board):
    """A `Board` whose accelerator keeps weights in the board's DRAM.

    Parameters (beyond `Board`'s)
    ----------
    config : Config
        With ``dram_mib`` and a 16-byte link (a DRAM word; the board packs the UART's bytes).
    clk_freq : float
        The controller core's system clock, which the accelerator runs in (not a PLL setting
        of the board's: the core's own PLL makes it).
    dram_core : str
        The controller core's kind (`sim.dram_core.KINDS`).
    read_leveling : tuple of (int, int)
        Read bitslip and delay per DDR3 byte lane, set by the init sequence
        (`rtl.dram_init.init_writes`).
    """

    dram_core: str = "ecpix5"
    read_leveling: tuple = ()

    def __post_init__(self):
        cfg = self.config
        if not isinstance(cfg, Config) or cfg.link_bytes != 16 or not cfg.dram_mib:
            raise ValueError(f"board {self.name}: config must be a Config with DRAM (dram_mib) "
                             f"and link_bytes=16 (the board packs its UART's bytes into DRAM "
                             f"words), not {cfg!r}")
        params = dram_core.KINDS[self.dram_core]
        if params["sys_clk_freq"] != self.clk_freq:
            raise ValueError(f"board {self.name}: clk_freq {self.clk_freq / 1e6:g} MHz is not the "
                             f"DRAM core's system clock ({params['sys_clk_freq'] / 1e6:g} MHz)")
        object.__setattr__(self, "config", dataclasses.replace(
            cfg, abort_cycles=round(ABORT_SECONDS * self.clk_freq) if self.idle_abort else 0))

    def make_top(self):
        return DramBoardTop(self)


class DramBoardTop(Elaboratable):
    """LEDs: the first blinks at about 1 Hz (the controller's clock runs), the second lights
    while received words wait in the device, the third latches a UART framing error or overrun.

    Attributes (set by ``elaborate``, for the build's report)
    ----------
    f_out : float
        The clock the design runs at (the core's system clock).
    divisor, baud_error : the UART's, at that clock.
    """

    def __init__(self, board):
        self.board = board
        self.config = board.config
        self.pll = None
        self.f_out = board.clk_freq
        self.divisor, self.baud_error = baud_divisor(self.f_out, board.baudrate)

    def elaborate(self, platform):
        board = self.board
        m = Module()
        core = dram_core.core(board.dram_core)
        platform.add_file("litedram_core.v", core.verilog.read_text())

        clk_port = platform.request(platform.default_clk, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_port)
        pads = platform.request("ddr3", 0, dir="-")
        m.submodules.accel = accel = AcceleratorWithDram(
            self.config, core.info, pads=pads, read_leveling=board.read_leveling)

        # The whole design in the controller's system clock. Its constraint is nextpnr's own,
        # derived from clk100's through the core's PLL (sys2x, 150 MHz) and CLKDIVF (/2).
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [accel.clk_in.eq(clk_buf.i), ClockSignal("sync").eq(accel.user_clk),
                     ResetSignal("sync").eq(accel.user_rst)]

        word_bytes = self.config.link_bytes
        m.submodules.uart_rx = uart_rx = UARTReceiver(self.divisor)
        m.submodules.uart_tx = uart_tx = UARTTransmitter(self.divisor)
        m.submodules.packer = packer = BytePacker(word_bytes)
        m.submodules.serializer = serializer = ByteSerializer(word_bytes)
        connect(m, uart_rx.data, packer.i)
        connect(m, packer.o, accel.link_rx)
        connect(m, accel.link_tx, serializer.i)
        connect(m, serializer.o, uart_tx.data)
        connect(m, uart_rx.errors, accel.line_errors)

        uart_pins_and_leds(m, platform, board, self.f_out, uart_rx, uart_tx, accel.rx_empty)
        return m
