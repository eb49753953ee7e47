"""Header check: what a whole received header asks for, and whether this device can do it."""

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from systolica.protocol import Op

from .frame_layouts import Header

__all__ = ["HeaderCheck", "Verdict"]


class Verdict(data.Struct):
    """A header's checks, as the parser decides on them."""

    bad_header: 1       # the check byte is wrong or the status field is not 0
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
    """Checks ``header`` in two registered steps (timing): the flags and two partial sums of
    the check byte, then the sums' total. ``verdict`` is valid two cycles after ``header`` and
    the loaded state have settled, and holds while they do.

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
        raw = hdr.as_value()
        check_lo = Signal(8)
        check_hi = Signal(8)
        bad_status = Signal()
        m.d.sync += [
            check_lo.eq(sum(raw.word_select(i, 8) for i in range(8))),
            check_hi.eq(sum(raw.word_select(i, 8) for i in range(8, 16))),
            bad_status.eq(hdr.status != 0),
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
            # The check's total gets a cycle of its own (timing: its carry chain in front of
            # the decision was the iCE40's longest path otherwise).
            v.bad_header.eq(bad_status | ((check_lo + check_hi)[:8] != 0)),
        ]
        return m
