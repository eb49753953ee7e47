"""Header check: what a whole received header asks for, and whether this device can do it."""

from amaranth.hdl import Const, Module, Mux
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from systolica import protocol
from systolica.protocol import Feature, Op

from .frame_layouts import Header

__all__ = ["DramVerdict", "HeaderCheck", "Verdict"]


class Verdict(data.Struct):
    """A header's checks, as the parser decides on them."""

    bad_header: 1       # a field that must be 0 in a command (status, info, arg3) is not
    is_identify: 1
    is_load: 1
    is_gemm: 1
    n_ok: 1             # 1 <= N (arg0) <= 65535
    k_ok: 1             # 1 <= K (arg1) <= max_k
    m_ok: 1             # 1 <= M (arg2's low 24 bits) <= 65535; bits 23 and 22 may be
                        # `protocol.PAIR_SUM` and `protocol.ARGMAX` where they are allowed
    matches_loaded: 1   # an A of this N and K is loaded
    a_fmt_ok: 1         # LOAD_A's activation format (arg2) is one this device carries
    a_k32: 1            # K is a multiple of 32
    load_blocks: 1      # this LOAD_A asks for 32-blocks
    w_fmt_ok: 1         # GEMM's weight format (arg2's top byte) is carried and goes with the A


class DramVerdict(data.Struct):
    """A header's checks for the DRAM commands (devices with DRAM)."""

    is_write: 1         # WRITE_DRAM
    is_gemm_dram: 1     # GEMM_DRAM (``Verdict.is_gemm`` is set too: its checks are GEMM's)
    write_ok: 1         # WRITE_DRAM's address and length are aligned and inside the DRAM
    read_ok: 1          # GEMM_DRAM's stored payload is aligned and inside the DRAM, length 0
    is_check: 1         # DRAM_CHECK
    check_ok: 1         # DRAM_CHECK's bytes are aligned, not empty and inside the DRAM, length 0


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
    dram : (devices with DRAM) out; the `DramVerdict`.
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
            **({"dram": Out(DramVerdict)} if config.dram_mib else {}),
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
        if cfg.dram_mib:
            self._dram_checks(m)       # after the common checks: its bad_header, is_gemm win
        return m

    def _flag_checks(self, gemm_dram):
        """With pair sums or argmax, M's check lets their flags through on a block-format
        GEMM_DRAM: `protocol.PAIR_SUM` with N even, `protocol.ARGMAX` with one result row."""
        features = self._config.features
        if not features:
            return []
        hdr, v = self.header, self.verdict
        pair, argmax, n = hdr.arg2[23], hdr.arg2[22], hdr.arg0
        blocks = gemm_dram & (hdr.arg2[24:] != 0)
        pair_ok = blocks & (n[0] == 0) if Feature.PAIR_SUM in features else 0
        one_row = Mux(pair, n == 2, n == 1)
        argmax_ok = blocks & one_row if Feature.ARGMAX in features else 0
        return [v.m_ok.eq((hdr.arg2[:16] != 0) & (hdr.arg2[16:22] == 0)
                          & (~pair | pair_ok) & (~argmax | argmax_ok))]

    def _dram_checks(self, m):
        """The checks that differ with DRAM: GEMM_DRAM carries ``info`` and ``arg3``, WRITE_DRAM
        no arg1 or arg2, DRAM_CHECK no arg2; the DRAM commands' ranges (33-bit sums: nothing
        wraps around)."""
        hdr, v, d = self.header, self.verdict, self.dram
        size = self._config.dram_mib << 20
        align = protocol.DRAM_WORD_BYTES - 1
        crc_bytes = protocol.crc_word_bytes(self._config.link_bytes)
        write, gemm_dram = hdr.op == Op.WRITE_DRAM, hdr.op == Op.GEMM_DRAM
        check = hdr.op == Op.DRAM_CHECK
        m.d.sync += [
            v.bad_header.eq((hdr.status != 0)
                            | ~gemm_dram & ((hdr.info != 0) | (hdr.arg3 != 0))
                            | write & ((hdr.arg1 != 0) | (hdr.arg2 != 0))
                            | check & (hdr.arg2 != 0)),
            v.is_gemm.eq((hdr.op == Op.GEMM) | gemm_dram),
            d.is_write.eq(write),
            d.is_gemm_dram.eq(gemm_dram),
            d.write_ok.eq(((hdr.arg0 & align) == 0) & ((hdr.length & align) == 0)
                          & (hdr.length != 0) & (hdr.length <= protocol.MAX_WRITE_DRAM)
                          & (hdr.arg0 + hdr.length <= size)),
            d.read_ok.eq(((hdr.arg3 & align) == 0) & ((hdr.info & align) == 0)
                         & (hdr.info != 0) & (hdr.length == 0)
                         & (hdr.arg3 + hdr.info + crc_bytes <= size)),
            d.is_check.eq(check),
            *self._flag_checks(gemm_dram),
            d.check_ok.eq(((hdr.arg0 & align) == 0) & ((hdr.arg1 & align) == 0)
                          & (hdr.arg1 != 0) & (hdr.length == 0)
                          & (hdr.arg0 + hdr.arg1 + crc_bytes <= size)),
        ]
