"""Payload router: an accepted command's payload words to the activation buffer, the weight
banks or the block unpacker, cut into tiles and vectors."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica import protocol

from .command import CommandSignature

__all__ = ["PayloadRouter"]


def _ceil_log2(value):
    return (value - 1).bit_length()


class PayloadRouter(wiring.Component):
    """Moves one command's payload (see `protocol`) from link words into array vectors.

    LOAD_A's payload is row tiles of K activation vectors (in 32-blocks: a scale vector before
    every 32), GEMM's is column tiles of K weight rows, or, in a block format, K / 32 groups of
    the tile's weight blocks, passed word by word to the unpacker. Each vector is padded to whole
    link words. Every decision on the payload path is taken from registered flags (timing): the
    last word of a vector, the last vector of a tile, the last tile; a tile's shape is worked out
    in a state of its own.

    Ports
    -----
    parser : `CommandSignature` (flipped): a command in while idle; ``done`` the cycle after its last word.
    rx : stream of link words in; taken only while a payload is being routed.
    act : stream of activation vectors (``rows`` int8) for the activation buffer.
    wgt : stream of weight rows (``cols`` int8) for the weight banks (int8 GEMMs).
    load_start, gemm_start : one-cycle strobes, the cycle after a command is taken.
    act_scale : (block formats) stream of scale vectors (``rows`` binary16) of LOAD_A in blocks.
    wgt_words : (block formats) stream of a block GEMM's payload words for the unpacker.
    group_blocks : (block formats) blocks in each of the current tile's groups (its columns).
    unpacker_idle : (block formats) in; the unpacker has passed on the previous tile's blocks.
    """

    def __init__(self, config):
        self._config = config
        cfg = config
        super().__init__({
            "parser": In(CommandSignature(cfg)),
            "rx": In(stream.Signature(8 * cfg.link_bytes)),
            "act": Out(stream.Signature(data.ArrayLayout(data.signed(8), cfg.rows))),
            "wgt": Out(stream.Signature(data.ArrayLayout(data.signed(8), cfg.cols))),
            "load_start": Out(1),
            "gemm_start": Out(1),
            **({
                "act_scale": Out(stream.Signature(data.ArrayLayout(16, cfg.rows))),
                "wgt_words": Out(stream.Signature(8 * cfg.link_bytes)),
                "group_blocks": Out(range(cfg.cols + 1)),
                "unpacker_idle": In(1),
            } if cfg.block_formats else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        lb = cfg.link_bytes
        blocks = bool(cfg.block_formats)
        vec_bytes = max(cfg.rows, cfg.cols, 2 * cfg.rows if blocks else 0)
        vec_words = protocol.words(vec_bytes, lb)
        word = self.rx.payload
        cmd = Signal.like(self.parser.cmd.payload)   # the command being routed

        # Payload vectors: up to `vec_words` words are gathered into one vector.
        vec = Signal(8 * lb * vec_words)
        vec_next = Signal.like(vec)
        vec_len = Signal(range(max(cfg.rows, cfg.cols) + 1))   # valid lanes in this tile's vectors
        vec_last_word = Signal(range(vec_words))
        word_idx = Signal(range(vec_words))
        step = Signal(range(cfg.max_k))                        # k within the tile
        left = Signal(17)                                      # rows/cols from this tile on
        # The registered flags the payload path decides on.
        word_last = Signal()
        one_word = Signal()          # this tile's vectors are one word each
        steps_left = Signal(range(cfg.max_k))
        step_last = Signal()
        tile_last = Signal()
        # Block formats: LOAD_A's scale vectors (one before every 32 activation vectors) and
        # GEMM's groups of weight blocks.
        scale_phase = Signal()       # the vector being gathered is a scale vector
        scale_last_word = Signal(range(vec_words))
        scale_one_word = Signal()
        group_last_word = Signal(16)
        group_one_word = Signal()
        group_idx = Signal(16)
        bad_scale = Signal()
        scale_check = Signal()

        m.d.comb += [
            vec_next.eq(Mux(word_idx == 0, word, vec)),
            self.act.payload.eq(vec_next[:8 * cfg.rows]),
            self.wgt.payload.eq(vec_next[:8 * cfg.cols]),
            self.parser.bad_scale.eq(bad_scale),
        ]
        if vec_words > 1:
            m.d.comb += vec_next.word_select(word_idx, 8 * lb).eq(word)
        if blocks:
            m.d.comb += [
                self.act_scale.payload.eq(vec_next[:16 * cfg.rows]),
                self.wgt_words.payload.eq(word),
                self.group_blocks.eq(vec_len),
            ]
            # A scale vector is checked for inf/NaN (exponent 31) in the cycle after its last
            # word, from the registered vector (timing: from ``vec_next`` the check was the
            # ECPIX-5's critical path). The parser reads the flag at least 32 vectors later.
            scale_lanes = data.ArrayLayout(16, cfg.rows)(vec[:16 * cfg.rows])
            scale_bad = Signal()
            m.d.comb += scale_bad.eq(Cat(
                (scale_lanes[r][10:15] == 0x1F) & (r < vec_len) for r in range(cfg.rows)).any())
            m.d.sync += scale_check.eq(0)
            with m.If(scale_check & scale_bad):
                m.d.sync += bad_scale.eq(1)

        def tile_shape(m, size, load):
            """Set up the tile that starts with ``left`` rows/cols to go."""
            valid = Mux(left > size, size, left)
            last_word = ((valid + lb - 1) >> _ceil_log2(lb)) - 1
            m.d.sync += [
                vec_len.eq(valid),
                vec_last_word.eq(last_word),
                word_idx.eq(0),
                word_last.eq(last_word == 0),
                one_word.eq(last_word == 0),
                step.eq(0),
                steps_left.eq(cmd.k_last),
                step_last.eq(cmd.k_last == 0),
                tile_last.eq(left <= size),
            ]
            if blocks and load:        # LOAD_A: a scale vector of 2 bytes a row first
                scale_last = ((2 * valid + lb - 1) >> _ceil_log2(lb)) - 1
                m.d.sync += [
                    scale_last_word.eq(scale_last),
                    scale_one_word.eq(scale_last == 0),
                    scale_phase.eq(cmd.blocks),
                ]
                with m.If(cmd.blocks):
                    m.d.sync += word_last.eq(scale_last == 0)
            if load:
                m.next = "LOAD_A"
            elif blocks:
                with m.If(cmd.fmt == protocol.Format.INT8):
                    m.next = "GEMM"
                with m.Else():
                    m.next = "GEMM_GROUPS"
            else:
                m.next = "GEMM"

        def group_shape(m):
            """GEMM in a block format: the tile's groups of ``vec_len`` blocks, K / 32 of them (a
            state after `tile_shape`, from its registered ``vec_len``; timing)."""
            v = vec_len
            # Bytes of a group: 34, 18 or 20 a block, as shifts and adds (no multiplier).
            nbytes = Mux(cmd.fmt == protocol.Format.Q8_0, (v << 5) + (v << 1),
                         Mux(cmd.fmt == protocol.Format.Q4_0, (v << 4) + (v << 1),
                             (v << 4) + (v << 2)))
            last = ((nbytes + lb - 1) >> _ceil_log2(lb)) - 1
            m.d.sync += [
                group_last_word.eq(last), group_one_word.eq(last == 0), group_idx.eq(0),
                word_last.eq(last == 0),
                steps_left.eq(cmd.k_last >> 5),
                step_last.eq((cmd.k_last >> 5) == 0),
            ]

        def finish(m):
            m.next = "DONE"

        def next_step(m, size, tile_state):
            """After a tile's vector (or group): the next one, the next tile, or the end."""
            with m.If(step_last):
                with m.If(tile_last):
                    finish(m)
                with m.Else():
                    m.d.sync += left.eq(left - size)
                    m.next = tile_state
            with m.Else():
                m.d.sync += [steps_left.eq(steps_left - 1), step_last.eq(steps_left == 1)]

        def next_vector(m, size, tile_state, load):
            m.d.sync += [word_idx.eq(0), word_last.eq(one_word)]
            next_step(m, size, tile_state)
            with m.If(~step_last):
                m.d.sync += step.eq(step + 1)
                if blocks and load:
                    with m.If(cmd.blocks & (step[:5] == 31)):   # a new block: its scales first
                        m.d.sync += [scale_phase.eq(1), word_last.eq(scale_one_word)]

        def vector_state(m, out, size, tile_state):
            load = out is self.act
            if blocks and load:
                m.d.comb += [
                    out.valid.eq(self.rx.valid & word_last & ~scale_phase),
                    self.act_scale.valid.eq(self.rx.valid & word_last & scale_phase),
                    self.rx.ready.eq(~word_last | Mux(scale_phase, self.act_scale.ready,
                                                      out.ready)),
                ]
                last_word = Mux(scale_phase, scale_last_word, vec_last_word)
            else:
                m.d.comb += [
                    out.valid.eq(self.rx.valid & word_last),
                    self.rx.ready.eq(~word_last | out.ready),
                ]
                last_word = vec_last_word
            with m.If(self.rx.valid & self.rx.ready):
                m.d.sync += vec.eq(vec_next)
                with m.If(word_last):
                    if blocks and load:
                        with m.If(scale_phase):
                            m.d.sync += [scale_phase.eq(0), word_idx.eq(0),
                                         word_last.eq(one_word), scale_check.eq(1)]
                        with m.Else():
                            next_vector(m, size, tile_state, load)
                    else:
                        next_vector(m, size, tile_state, load)
                with m.Else():
                    m.d.sync += [word_idx.eq(word_idx + 1),
                                 word_last.eq(word_idx + 1 == last_word)]

        def group_state(m):
            """GEMM in a block format: words go to the unpacker, K / 32 groups a tile."""
            m.d.comb += [
                self.wgt_words.valid.eq(self.rx.valid),
                self.rx.ready.eq(self.wgt_words.ready),
            ]
            with m.If(self.rx.valid & self.rx.ready):
                with m.If(word_last):
                    m.d.sync += [group_idx.eq(0), word_last.eq(group_one_word)]
                    next_step(m, cfg.cols, "GEMM_TILE")
                with m.Else():
                    m.d.sync += [group_idx.eq(group_idx + 1),
                                 word_last.eq(group_idx + 1 == group_last_word)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.parser.cmd.ready.eq(1)
                with m.If(self.parser.cmd.valid):
                    m.d.sync += [cmd.eq(self.parser.cmd.payload),
                                 left.eq(self.parser.cmd.payload.size)]
                    with m.If(self.parser.cmd.payload.load):
                        m.d.sync += bad_scale.eq(0)
                    m.next = "START"

            with m.State("DONE"):
                # ``done`` a cycle after the last word, from the state register (timing: from
                # the last word's handshake it made the parser's state wait on the whole
                # payload path, the iCEBreaker's and ULX3S-25F's critical path).
                m.d.comb += self.parser.done.eq(1)
                m.next = "IDLE"

            with m.State("START"):
                # The strobes come one cycle after the command, once the parser has set n, k, m.
                with m.If(cmd.load):
                    m.d.comb += self.load_start.eq(1)
                    tile_shape(m, cfg.rows, load=True)
                with m.Else():
                    m.d.comb += self.gemm_start.eq(1)
                    tile_shape(m, cfg.cols, load=False)

            with m.State("LOAD_A_TILE"):
                tile_shape(m, cfg.rows, load=True)

            with m.State("GEMM_TILE"):
                # The unpacker reads a tile's C' until the tile's last block has left it.
                with m.If((cmd.fmt == protocol.Format.INT8) | self.unpacker_idle
                          if blocks else 1):
                    tile_shape(m, cfg.cols, load=False)

            if blocks:
                with m.State("GEMM_GROUPS"):
                    group_shape(m)
                    m.next = "GEMM"

            with m.State("LOAD_A"):
                vector_state(m, self.act, cfg.rows, "LOAD_A_TILE")

            with m.State("GEMM"):
                if blocks:
                    with m.If(cmd.fmt == protocol.Format.INT8):
                        vector_state(m, self.wgt, cfg.cols, "GEMM_TILE")
                    with m.Else():
                        group_state(m)
                else:
                    vector_state(m, self.wgt, cfg.cols, "GEMM_TILE")
        return m
