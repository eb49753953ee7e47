"""What a board is to systolica: a platform from amaranth-boards, the clock its PLL makes, the
array size that fits the part, and the UART to its USB-serial chip."""

import dataclasses
import importlib

from systolica.config import Config

__all__ = ["Board"]


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
    rows, cols, act_depth, max_k, rx_fifo_words : int
        The accelerator configuration that fits this part (`Config`).
    multiplier : str
        How the PEs multiply (`Config.multiplier`): "infer" (one hard DSP each) or "pairs" (two
        PEs per iCE40 SB_MAC16).
    leds : tuple of (name, number)
        LED resources: heartbeat, receive activity, framing error.
    synth_opts, nextpnr_opts, env : extra Yosys and nextpnr options, and environment, for the
        build (a ``--seed`` in ``nextpnr_opts`` picks the placement; the result of a given
        seed is reproducible with the same tools).
    formats : tuple of str
        Weight formats the bitstream carries (`Config.formats`).
    buffer_piece_depth, scale_share, scale_multiplier, lane_weights
        Implementation choices for the part (`Config`): buffers in registered pieces, and how the
        block formats' scale stage and lane memory are built (8-weight lane words: a UART feeds
        far fewer weights a cycle than that).
    """

    name: str
    description: str
    platform: str
    family: str
    clk_freq: float
    baudrate: int
    rows: int
    cols: int
    act_depth: int
    max_k: int
    rx_fifo_words: int = 512
    multiplier: str = "infer"
    leds: tuple = (("led", 0), ("led", 1))
    synth_opts: str = ""
    nextpnr_opts: str = ""
    env: tuple = ()
    dsp_available: int = 0
    formats: tuple = ("int8",)
    buffer_piece_depth: int = 0
    scale_share: int = 1
    scale_multiplier: str = "infer"
    lane_weights: int = 8

    def config(self):
        """The accelerator configuration of this board: a 1-byte link behind the UART."""
        return Config(rows=self.rows, cols=self.cols, link_bytes=1, act_depth=self.act_depth,
                      max_k=self.max_k, rx_fifo_words=self.rx_fifo_words,
                      multiplier=self.multiplier, formats=self.formats,
                      buffer_piece_depth=self.buffer_piece_depth, scale_share=self.scale_share,
                      scale_multiplier=self.scale_multiplier, lane_weights=self.lane_weights)

    def make_platform(self):
        module, _, cls = self.platform.partition(":")
        platform_cls = getattr(importlib.import_module(module), cls)
        if self.family == "gowin":        # Amaranth's Gowin flow, with today's nextpnr
            from .gowin import with_himbaechel
            platform_cls = with_himbaechel(platform_cls)
        return platform_cls()

    @property
    def macs(self):
        return self.rows * self.cols
