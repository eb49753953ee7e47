"""Header check: what a whole received header asks for, and whether this device can do it."""

from amaranth.hdl import Const, Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from systolica.protocol import Op

from .frame_layouts import Header

__all__ = ["HeaderCheck", "Verdict"]


class Verdict(data.Struct):
    """A header's checks, as the parser decides on them."""

    bad_header: 1       # a field that must be 0 in a command (status, info, arg3) is not
    is_identify: 1
    is_load: 1
    is_gemm: 1
    n_ok: 1             # 1 <= N (arg0) <= 65535
    k_ok: 1             # 1 <= K (arg1) <= max_k
    m_ok: 1             # 1 <= M (arg2's low 24 bits) <= 65535
    matches_loaded: 1   # an A of this N and K is loaded
    a_fmt_ok: 1         # LOAD_A's activation format (arg2) is one this device carries
    a_k32: 1            # K is a multiple of 32
    load_blocks: 1      # this LOAD_A asks for 32-blocks
    w_fmt_ok: 1         # GEMM's weight format (arg2's top byte) is carried and goes with the A


class HeaderCheck(wiring.Component):
    """Checks ``header`` (whose CRC the `HeaderWindow` has checked) in a registered step:
    ``verdict`` is valid the cycle after ``header`` and the loaded state have settled, and holds
    while they do.

    Ports
    -----
    header : in; the received header (`Header`).
    loaded, loaded_n, loaded_k, a_blocks : in; whether an A is loaded, its N and K, and
        whether it is in 32-blocks.
    verdict : out; the `Verdict`.
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "header": In(Header),
            "loaded": In(1),
            "loaded_n": In(16),
            "loaded_k": In(range(config.max_k + 1)),
            "a_blocks": In(1),
            "verdict": Out(Verdict),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        blocks = bool(cfg.block_formats)
        hdr, v = self.header, self.verdict
        m.d.sync += [
            v.bad_header.eq((hdr.status != 0) | (hdr.info != 0) | (hdr.arg3 != 0)),
            v.n_ok.eq((hdr.arg0 >= 1) & (hdr.arg0 <= 0xFFFF)),
            v.k_ok.eq((hdr.arg1 >= 1) & (hdr.arg1 <= cfg.max_k)),
            v.m_ok.eq((hdr.arg2[:24] >= 1) & (hdr.arg2[:24] <= 0xFFFF)),
            v.matches_loaded.eq(self.loaded & (hdr.arg0 == self.loaded_n) &
                                (hdr.arg1 == self.loaded_k)),
            v.is_identify.eq(hdr.op == Op.IDENTIFY),
            v.is_load.eq(hdr.op == Op.LOAD_A),
            v.is_gemm.eq(hdr.op == Op.GEMM),
            v.a_fmt_ok.eq((hdr.arg2 == 0) | ((hdr.arg2 == 1) if blocks else 0)),
            v.a_k32.eq(hdr.arg1[:5] == 0),
            v.load_blocks.eq(hdr.arg2 != 0),
            v.w_fmt_ok.eq((hdr.arg2[24:] < 4)
                          & Const(cfg.format_mask, 4).bit_select(hdr.arg2[24:26], 1)
                          & ((hdr.arg2[24:] != 0) == self.a_blocks)),
        ]
        return m
