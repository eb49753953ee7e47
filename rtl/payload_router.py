"""Payload router: an accepted command's payload words to the activation buffer, the weight
banks or the block unpacker, cut into tiles and vectors."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica import protocol

from .command import CommandSignature
from .control import CrcPortSignature, crc_delay, crc_processor
from .payload_router_state import group_shape, router_registers, set_left, tile_shape
from .payload_vectors import VectorStates

__all__ = ["PayloadRouter"]


class PayloadRouter(VectorStates, wiring.Component):
    """Moves one command's payload (see `protocol`) from link words into array vectors.

    LOAD_A's payload is row tiles of K activation vectors (in 32-blocks: a scale vector before
    every 32), GEMM's is column tiles of K weight rows, or, in a block format, K / 32 groups of
    the tile's weight blocks, passed word by word to the unpacker. Each vector is padded to whole
    link words, but LOAD_A's where the device packs them (`protocol.act_lanes`: ``rows`` bytes
    each, several to a word). Then the CRC word: every payload word and it go through a CRC-32 `Processor`,
    whose residue says whether the payload arrived intact. Every decision on the payload path is
    taken from registered flags (timing): the last word of a vector, the last vector of a tile,
    the last tile; a tile's shape is worked out in a state of its own.

    Ports
    -----
    parser : `CommandSignature` (flipped): a command in while idle; ``done`` (and ``bad_crc``)
        two cycles after its CRC word.
    rx : stream of link words in; taken only while a payload is being routed.
    act : stream of activation vectors (``rows`` int8) for the activation buffer.
    wgt : stream of weight rows (``cols`` int8) for the weight banks (int8 GEMMs).
    load_start, gemm_start : one-cycle strobes, the cycle after a command is taken.
    payload_done : a one-cycle strobe (with ``done``) once the payload's CRC word is checked.
    routing : out; a command's payload (or its CRC word) is being taken.
    act_scale : (block formats) stream of scale vectors (``rows`` binary16) of LOAD_A in blocks.
    wgt_words : (block formats) stream of a block GEMM's payload words for the unpacker.
    group_blocks : (block formats) blocks in each of the current tile's groups (its columns).
    unpacker_idle : (block formats) in; the unpacker has passed on the previous tile's blocks.
    crc : (``shared_crc``) `CrcPortSignature` to a CRC processor outside (shared), not its own.
    store : (DRAM) stream of a WRITE_DRAM's (DRAM_CHECK's) payload words, for the DRAM writer
        (for nothing).
    store_start : (DRAM) a one-cycle strobe, the cycle after a WRITE_DRAM or DRAM_CHECK is
        taken.
    """

    def __init__(self, config, *, shared_crc=False):
        self._config = config
        cfg = config
        super().__init__({
            "parser": In(CommandSignature(cfg)),
            "rx": In(stream.Signature(8 * cfg.link_bytes)),
            "act": Out(stream.Signature(data.ArrayLayout(data.signed(8), cfg.rows))),
            "wgt": Out(stream.Signature(data.ArrayLayout(data.signed(8), cfg.cols))),
            "load_start": Out(1),
            "gemm_start": Out(1),
            "payload_done": Out(1),
            "routing": Out(1),
            **({
                "act_scale": Out(stream.Signature(data.ArrayLayout(16, cfg.rows))),
                "wgt_words": Out(stream.Signature(8 * cfg.link_bytes)),
                "group_blocks": Out(range(cfg.cols + 1)),
                "unpacker_idle": In(1),
            } if cfg.block_formats else {}),
            **({"crc": Out(CrcPortSignature(8 * cfg.link_bytes))} if shared_crc else {}),
            **({"store": Out(stream.Signature(8 * cfg.link_bytes)),
                "store_start": Out(1)} if cfg.dram_mib else {}),
        })

    def _check_scales(self, m, r):
        """A scale vector is checked for inf/NaN (exponent 31) in the cycle after its last word,
        from the registered vector (timing: from ``vec_next`` the check was the ECPIX-5's
        critical path). The parser reads the flag at least 32 vectors later."""
        cfg = self._config
        scale_lanes = data.ArrayLayout(16, cfg.rows)(r.vec[:16 * cfg.rows])
        scale_bad = Signal()
        m.d.comb += scale_bad.eq(Cat(
            (scale_lanes[i][10:15] == 0x1F) & (i < r.vec_len) for i in range(cfg.rows)).any())
        m.d.sync += r.scale_check.eq(0)
        with m.If(r.scale_check & scale_bad):
            m.d.sync += r.bad_scale.eq(1)

    def _load_or_gemm_start(self, m, r, first):
        cfg = self._config
        with first(r.cmd.load):
            m.d.comb += self.load_start.eq(1)
            tile_shape(m, cfg, r, cfg.rows, load=True)
        with m.Else():
            m.d.comb += self.gemm_start.eq(1)
            tile_shape(m, cfg, r, cfg.cols, load=False)

    def _store_start(self, m, r):
        """WRITE_DRAM, DRAM_CHECK: ``words`` + 1 words to ``store``, then the CRC word."""
        m.d.comb += self.store_start.eq(1)
        m.d.sync += [r.store_left.eq(r.cmd.words), r.word_last.eq(r.cmd.words == 0)]
        m.next = "STORE"

    def _store_state(self, m, r):
        m.d.comb += [
            self.store.payload.eq(self.rx.payload),
            self.store.valid.eq(self.rx.valid),
            self.rx.ready.eq(self.store.ready),
        ]
        with m.If(self.rx.valid & self.store.ready):
            m.d.sync += [r.store_left.eq(r.store_left - 1), r.word_last.eq(r.store_left == 1)]
            with m.If(r.word_last):
                self._crc_word_next(m, r)

    def _crc_word_next(self, m, r):
        lb = self._config.link_bytes
        m.d.sync += r.crc_left.eq(protocol.words(protocol.crc_word_bytes(lb), lb) - 1)
        m.next = "CRC_WORD"

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        blocks = bool(cfg.block_formats)
        r = router_registers(cfg, self.parser.cmd.payload)
        word, cmd = self.rx.payload, r.cmd

        m.d.comb += [
            r.vec_next.eq(Mux(r.word_idx == 0, word, r.vec)),
            self.act.payload.eq(r.vec_next[:8 * cfg.rows] if r.lane is None
                                else word.word_select(r.lane, 8 * cfg.rows)),
            self.wgt.payload.eq(r.vec_next[:8 * cfg.cols]),
            self.parser.bad_scale.eq(r.bad_scale),
            self.parser.bad_crc.eq(r.bad_crc),
        ]
        if r.vec_words > 1:
            m.d.comb += r.vec_next.word_select(r.word_idx, 8 * cfg.link_bytes).eq(word)
        if blocks:
            m.d.comb += [
                self.act_scale.payload.eq(r.vec_next[:16 * cfg.rows]),
                self.wgt_words.payload.eq(word),
                self.group_blocks.eq(r.vec_len),
            ]
            self._check_scales(m, r)

        # The payload's CRC: every payload word the router takes, then the CRC word.
        crc = crc_processor(m, self, 8 * cfg.link_bytes)
        m.d.comb += [crc.data.eq(word), crc.valid.eq(self.rx.valid & self.rx.ready)]

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.parser.cmd.ready.eq(1)
                with m.If(self.parser.cmd.valid):
                    m.d.sync += [cmd.eq(self.parser.cmd.payload), r.bad_crc.eq(0)]
                    set_left(m, cfg, r, self.parser.cmd.payload.size)
                    with m.If(self.parser.cmd.payload.load):
                        m.d.sync += r.bad_scale.eq(0)
                    m.next = "START"

            with m.State("CRC_WORD"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += r.crc_left.eq(r.crc_left - 1)
                    with m.If(r.crc_left == 0):
                        m.next = "SETTLE" if crc_delay(self) else "CHECK"

            if crc_delay(self):
                with m.State("SETTLE"):         # the CRC word reaches the shared processor
                    m.next = "CHECK"

            with m.State("CHECK"):
                m.d.sync += r.bad_crc.eq(~crc.match_detected)
                m.next = "DONE"

            with m.State("DONE"):
                # ``done`` a cycle after the CRC word's check, from the state register (timing:
                # from the last word's handshake it made the parser's state wait on the whole
                # payload path, the iCEBreaker's and ULX3S-25F's critical path).
                m.d.comb += [self.parser.done.eq(1), self.payload_done.eq(1)]
                m.next = "IDLE"

            with m.State("START"):
                m.d.comb += crc.start.eq(1)
                # The strobes come one cycle after the command, once the parser has set n, k, m.
                if cfg.dram_mib:
                    with m.If(cmd.store):
                        self._store_start(m, r)
                    self._load_or_gemm_start(m, r, m.Elif)
                else:
                    self._load_or_gemm_start(m, r, m.If)

            if cfg.dram_mib:
                with m.State("STORE"):
                    self._store_state(m, r)

            with m.State("LOAD_A_TILE"):
                tile_shape(m, cfg, r, cfg.rows, load=True)

            with m.State("GEMM_TILE"):
                # The unpacker reads a tile's C' until the tile's last block has left it.
                with m.If((cmd.fmt == protocol.Format.INT8) | self.unpacker_idle
                          if blocks else 1):
                    tile_shape(m, cfg, r, cfg.cols, load=False)

            if blocks:
                with m.State("GEMM_GROUPS"):
                    group_shape(m, cfg, r)
                    m.next = "GEMM"

            with m.State("LOAD_A"):
                if r.lane is None:
                    self._vector_state(m, r, self.act, cfg.rows, "LOAD_A_TILE")
                else:
                    self._packed_vector_state(m, r)

            with m.State("GEMM"):
                if blocks:
                    with m.If(cmd.fmt == protocol.Format.INT8):
                        self._vector_state(m, r, self.wgt, cfg.cols, "GEMM_TILE")
                    with m.Else():
                        self._group_state(m, r)
                else:
                    self._vector_state(m, r, self.wgt, cfg.cols, "GEMM_TILE")
        waiting = ("IDLE", "SETTLE", "CHECK", "DONE") if crc_delay(self) else ("IDLE", "CHECK",
                                                                                "DONE")
        m.d.comb += self.routing.eq(~Cat(fsm.ongoing(state) for state in waiting).any())
        return m
