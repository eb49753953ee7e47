"""What a board is to systolica: a platform from amaranth-boards, the clock its PLL makes, the
array size that fits the part, and the UART to its USB-serial chip."""

import dataclasses
import importlib

from systolica.config import Config

__all__ = ["ABORT_SECONDS", "Board"]

# The idle abort on a board (`Config.abort_cycles`): a frame that stops arriving for this long is
# dropped. Far above a USB-UART's latency (a few milliseconds) while the host waits for credit.
ABORT_SECONDS = 0.25


@dataclasses.dataclass(frozen=True)
class Board:
    """One supported board.

    Parameters
    ----------
    name : str
        What the user types (``--board icebreaker``).
    platform : str
        ``module:Class`` of the amaranth-boards platform.
    family : str
        ``"ice40"``, ``"ecp5"`` or ``"gowin"`` (selects the PLL, the toolchain and the DSP
        strategy).
    clk_freq : float
        The clock the PLL makes for the whole design, in Hz.
    baudrate : int
        UART line rate (the board's USB-serial chip must support it).
    config : Config
        The accelerator this board's bitstream carries: the array and buffers that fit the part,
        its weight formats and implementation choices, with a 1-byte link behind the UART. Its
        ``abort_cycles`` is set to `ABORT_SECONDS` of ``clk_freq`` (unless ``idle_abort`` is
        False: then 0, no idle abort).
    leds : tuple of (name, number)
        LED resources: heartbeat, receive activity, framing error.
    synth_opts, nextpnr_opts, env : extra Yosys and nextpnr options, and environment, for the
        build (a ``--seed`` in ``nextpnr_opts`` picks the placement; the result of a given
        seed is reproducible with the same tools).
    dsp_available : int
        Hard multipliers on the part (for the report).
    loader : str
        openFPGALoader's name for the board (``--board``), for ``systolica program``.
    usb_uart : tuple
        (USB vendor id, product id, interface or None) of the board's USB-UART, for
        ``--port auto``; the interface tells a dual-channel chip's UART from its JTAG side.
    """

    name: str
    description: str
    platform: str
    family: str
    clk_freq: float
    baudrate: int
    config: Config
    leds: tuple = (("led", 0), ("led", 1))
    synth_opts: str = ""
    nextpnr_opts: str = ""
    env: tuple = ()
    dsp_available: int = 0
    usb_uart: tuple = ()
    loader: str = ""
    idle_abort: bool = True

    def __post_init__(self):
        if not isinstance(self.config, Config) or self.config.link_bytes != 1:
            raise ValueError(f"board {self.name}: config must be a Config with link_bytes=1 "
                             f"(a UART moves one byte at a time), not {self.config!r}")
        object.__setattr__(self, "config", dataclasses.replace(
            self.config,
            abort_cycles=round(ABORT_SECONDS * self.clk_freq) if self.idle_abort else 0))

    def make_platform(self):
        module, _, cls = self.platform.partition(":")
        platform_cls = getattr(importlib.import_module(module), cls)
        if self.family == "gowin":        # Amaranth's Gowin flow, with today's nextpnr
            from .gowin import with_himbaechel
            platform_cls = with_himbaechel(platform_cls)
        return platform_cls()

    @property
    def bitstream_extension(self):
        """What the family's flow writes: iCE40 .bin, ECP5 .bit, Gowin .fs."""
        return {"ice40": "bin", "ecp5": "bit", "gowin": "fs"}[self.family]

    @property
    def macs(self):
        return self.config.rows * self.config.cols
