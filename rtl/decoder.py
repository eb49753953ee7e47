"""Command decoder: parses frames (see `protocol`) from link words and routes their payloads."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica import protocol
from systolica.protocol import Op, Status

__all__ = ["CommandDecoder", "Header", "Reply"]


class Header(data.Struct):
    magic: 8
    op: 8
    status: 8
    check: 8
    arg0: 32
    arg1: 32
    arg2: 32


class Reply(data.Struct):
    """A reply the decoder asks the framer to send (header only, or IDENTIFY's)."""

    op: 8
    status: 8
    arg0: 32
    arg1: 32
    arg2: 32


def _ceil_log2(value):
    return (value - 1).bit_length()


class CommandDecoder(wiring.Component):
    """Parses headers, checks them, and streams LOAD_A / GEMM payloads as array vectors.

    Ports
    -----
    rx : stream of link words in.
    act : stream of activation vectors (``rows`` int8) for the activation buffer, in LOAD_A order.
    wgt : stream of weight rows (``cols`` int8) for the weight banks, in GEMM order.
    reply : stream of replies for the framer (LOAD_A done, IDENTIFY, errors).
    load_start, gemm_start : one-cycle strobes when a LOAD_A / GEMM header is accepted; ``n``,
        ``k``, ``m`` hold that command's sizes (``k_last`` = K - 1, registered for timing).
    busy : in; while set (a GEMM is still computing or replying) no new header is parsed.
    idle : out; waiting for a header on a word boundary.
    consumed : in; the link adapter's count of received bytes (reported by IDENTIFY).
    """

    def __init__(self, config):
        self._config = config
        cfg = config
        super().__init__({
            "rx": In(stream.Signature(8 * cfg.link_bytes)),
            "act": Out(stream.Signature(data.ArrayLayout(data.signed(8), cfg.rows))),
            "wgt": Out(stream.Signature(data.ArrayLayout(data.signed(8), cfg.cols))),
            "reply": Out(stream.Signature(Reply)),
            "load_start": Out(1),
            "gemm_start": Out(1),
            "n": Out(16),
            "k": Out(range(cfg.max_k + 1)),
            "k_last": Out(range(cfg.max_k)),
            "m": Out(16),
            "busy": In(1),
            "idle": Out(1),
            "consumed": In(32),
            **({
                "act_scale": Out(stream.Signature(data.ArrayLayout(16, cfg.rows))),
                "act_blocks": Out(1),
                "wgt_words": Out(stream.Signature(8 * cfg.link_bytes)),
                "group_blocks": Out(range(cfg.cols + 1)),
                "fmt": Out(2),
                "unpacker_idle": In(1),
            } if cfg.block_formats else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        lb = cfg.link_bytes
        hdr_words = protocol.words(protocol.HEADER_BYTES, lb)
        blocks = bool(cfg.block_formats)
        vec_bytes = max(cfg.rows, cfg.cols, 2 * cfg.rows if blocks else 0)
        vec_words = protocol.words(vec_bytes, lb)
        word = self.rx.payload

        # Header: shifted in word by word; the first word must start with MAGIC.
        hdr_bits = Signal(8 * lb * hdr_words)
        hdr = Header(hdr_bits[:128])
        hdr_count = Signal(range(hdr_words + 1))

        # Payload vectors: up to `vec_words` words are gathered into one vector.
        vec = Signal(8 * lb * vec_words)
        vec_next = Signal.like(vec)
        vec_len = Signal(range(max(cfg.rows, cfg.cols) + 1))   # valid lanes in this tile's vectors
        vec_last_word = Signal(range(vec_words))
        # Block formats: LOAD_A's scale vectors (one before every 32 activation vectors) and
        # GEMM's groups of weight blocks (passed to the unpacker word by word).
        scale_phase = Signal()           # the vector being gathered is a scale vector
        scale_last_word = Signal(range(vec_words))
        scale_one_word = Signal()
        group_last_word = Signal(16)
        group_one_word = Signal()
        group_idx = Signal(16)
        a_blocks = Signal()              # this LOAD_A / the loaded A is in 32-blocks
        bad_scale = Signal()
        word_idx = Signal(range(vec_words))
        step = Signal(range(cfg.max_k))                      # k within the tile
        tile = Signal(16)
        left = Signal(17)                                    # rows/cols from this tile on

        loaded = Signal()
        loaded_n = Signal(16)
        loaded_k = Signal.like(self.k)
        reply = Signal(Reply)

        m.d.comb += vec_next.eq(Mux(word_idx == 0, word, vec))
        if vec_words > 1:
            m.d.comb += vec_next.word_select(word_idx, 8 * lb).eq(word)
        m.d.comb += [
            self.act.payload.eq(vec_next[:8 * cfg.rows]),
            self.wgt.payload.eq(vec_next[:8 * cfg.cols]),
            self.reply.payload.eq(reply),
        ]
        if blocks:
            m.d.comb += [
                self.act_blocks.eq(a_blocks),
                self.act_scale.payload.eq(vec_next[:16 * cfg.rows]),
                self.wgt_words.payload.eq(word),
                self.group_blocks.eq(vec_len),
            ]
            # A scale vector is checked for inf/NaN (exponent 31) in the cycle after its last
            # word, from the registered vector (timing: from ``vec_next`` the check was the
            # ECPIX-5's critical path). LOADED reads the flag at least 32 vectors later.
            scale_lanes = data.ArrayLayout(16, cfg.rows)(vec[:16 * cfg.rows])
            scale_bad = Signal()
            scale_check = Signal()
            m.d.comb += scale_bad.eq(Cat(
                (scale_lanes[r][10:15] == 0x1F) & (r < vec_len) for r in range(cfg.rows)).any())
            m.d.sync += scale_check.eq(0)
            with m.If(scale_check & scale_bad):
                m.d.sync += bad_scale.eq(1)

        # The payload path decides on registered flags only (timing): the last word of a
        # vector, the last vector (k) of a tile, the last tile.
        word_last = Signal()
        one_word = Signal()          # this tile's vectors are one word each
        steps_left = Signal(range(cfg.max_k))
        step_last = Signal()
        tile_last = Signal()

        def tile_shape(m, size, load):
            """Set up the tile that starts with ``left`` rows/cols to go (a state of its own: the
            arithmetic stays off the payload path)."""
            valid = Mux(left > size, size, left)
            last_word = ((valid + lb - 1) >> _ceil_log2(lb)) - 1
            m.d.sync += [
                vec_len.eq(valid),
                vec_last_word.eq(last_word),
                word_idx.eq(0),
                word_last.eq(last_word == 0),
                one_word.eq(last_word == 0),
                step.eq(0),
                steps_left.eq(self.k_last),
                step_last.eq(self.k_last == 0),
                tile_last.eq(left <= size),
            ]
            if not blocks:
                return
            if load:                   # LOAD_A: a scale vector of 2 bytes a row first
                scale_last = ((2 * valid + lb - 1) >> _ceil_log2(lb)) - 1
                m.d.sync += [
                    scale_last_word.eq(scale_last),
                    scale_one_word.eq(scale_last == 0),
                    scale_phase.eq(a_blocks),
                ]
                with m.If(a_blocks):
                    m.d.sync += word_last.eq(scale_last == 0)

        def group_shape(m):
            """GEMM in a block format: the tile's groups of ``vec_len`` blocks, K / 32 of them (a
            state after `tile_shape`, from its registered ``vec_len``; timing)."""
            v = vec_len
            # Bytes of a group: 34, 18 or 20 a block, as shifts and adds (no multiplier).
            nbytes = Mux(self.fmt == protocol.Format.Q8_0, (v << 5) + (v << 1),
                         Mux(self.fmt == protocol.Format.Q4_0, (v << 4) + (v << 1),
                             (v << 4) + (v << 2)))
            last = ((nbytes + lb - 1) >> _ceil_log2(lb)) - 1
            m.d.sync += [
                group_last_word.eq(last), group_one_word.eq(last == 0), group_idx.eq(0),
                word_last.eq(last == 0),
                steps_left.eq(self.k_last >> 5),
                step_last.eq((self.k_last >> 5) == 0),
            ]

        def next_vector(m, size, tile_state, done_state, load):
            """Advance word/step/tile counters after a vector has been taken."""
            m.d.sync += [word_idx.eq(0), word_last.eq(one_word)]
            with m.If(step_last):
                with m.If(tile_last):
                    m.next = done_state
                with m.Else():
                    m.d.sync += [tile.eq(tile + 1), left.eq(left - size)]
                    m.next = tile_state
            with m.Else():
                m.d.sync += [step.eq(step + 1), steps_left.eq(steps_left - 1),
                             step_last.eq(steps_left == 1)]
                if blocks and load:
                    with m.If(a_blocks & (step[:5] == 31)):   # a new block: its scales first
                        m.d.sync += [scale_phase.eq(1), word_last.eq(scale_one_word)]

        def payload_state(m, out, size, tile_state, done_state):
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
                            next_vector(m, size, tile_state, done_state, load)
                    else:
                        next_vector(m, size, tile_state, done_state, load)
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
                    with m.If(step_last):
                        with m.If(tile_last):
                            m.next = "HEADER"
                        with m.Else():
                            m.d.sync += [tile.eq(tile + 1), left.eq(left - cfg.cols)]
                            m.next = "GEMM_TILE"
                    with m.Else():
                        m.d.sync += [steps_left.eq(steps_left - 1),
                                     step_last.eq(steps_left == 1)]
                with m.Else():
                    m.d.sync += [group_idx.eq(group_idx + 1),
                                 word_last.eq(group_idx + 1 == group_last_word)]

        def send_reply(m, op, status, arg0=0, arg1=0, arg2=0):
            m.d.sync += [reply.op.eq(op | protocol.REPLY), reply.status.eq(status),
                         reply.arg0.eq(arg0), reply.arg1.eq(arg1), reply.arg2.eq(arg2)]
            m.next = "REPLY"

        # The header's checks are registered in a VALIDATE cycle and a CHECK cycle before DECIDE
        # acts on them.
        check_lo = Signal(8)
        check_hi = Signal(8)
        bad_status = Signal()
        bad_header = Signal()        # the check failed or the status field is not 0
        n_ok = Signal()
        k_ok = Signal()
        m_ok = Signal()
        matches_loaded = Signal()
        is_identify = Signal()
        is_load = Signal()
        is_gemm = Signal()
        a_fmt_ok = Signal()
        a_k32 = Signal()
        load_blocks = Signal()       # this LOAD_A asks for 32-blocks
        w_fmt_ok = Signal()

        # LOAD_A's size check, ceil(N / rows) * K <= act_depth, done sequentially (no divider or
        # multiplier in the fabric): rows of A are counted off a tile at a time while the words
        # they need are added up; it stops as soon as the buffer would overflow, so it takes at
        # most min(ceil(N / rows), act_depth // K + 1) cycles.
        size_rows = Signal(17)       # rows from the current tile on
        size_room = Signal(range(-cfg.max_k - 1, cfg.act_depth + 1))  # buffer words left after it
        size_last = Signal()         # the current tile is the last
        size_over = Signal()         # size_room went negative

        with m.FSM():
            with m.State("HEADER"):
                m.d.comb += [
                    self.idle.eq(hdr_count == 0),
                    self.rx.ready.eq(~self.busy),
                ]
                with m.If(self.rx.valid & self.rx.ready):
                    with m.If((hdr_count != 0) | (word[:8] == protocol.MAGIC)):
                        m.d.sync += hdr_bits.eq(Cat(hdr_bits[8 * lb:], word)
                                                if hdr_words > 1 else word)
                        with m.If(hdr_count == hdr_words - 1):
                            m.d.sync += hdr_count.eq(0)
                            m.next = "VALIDATE"
                        with m.Else():
                            m.d.sync += hdr_count.eq(hdr_count + 1)

            with m.State("VALIDATE"):
                # Two partial sums of the check here, their total in CHECK (timing).
                m.d.sync += [
                    check_lo.eq(sum(hdr_bits.word_select(i, 8) for i in range(8))),
                    check_hi.eq(sum(hdr_bits.word_select(i, 8) for i in range(8, 16))),
                    bad_status.eq(hdr.status != 0),
                    n_ok.eq((hdr.arg0 >= 1) & (hdr.arg0 <= 0xFFFF)),
                    k_ok.eq((hdr.arg1 >= 1) & (hdr.arg1 <= cfg.max_k)),
                    m_ok.eq((hdr.arg2[:24] >= 1) & (hdr.arg2[:24] <= 0xFFFF)),
                    matches_loaded.eq(loaded & (hdr.arg0 == loaded_n) & (hdr.arg1 == loaded_k)),
                    is_identify.eq(hdr.op == Op.IDENTIFY),
                    is_load.eq(hdr.op == Op.LOAD_A),
                    is_gemm.eq(hdr.op == Op.GEMM),
                    a_fmt_ok.eq((hdr.arg2 == 0) | ((hdr.arg2 == 1) if blocks else 0)),
                    a_k32.eq(hdr.arg1[:5] == 0),
                    load_blocks.eq(hdr.arg2 != 0),
                    w_fmt_ok.eq((hdr.arg2[24:] < 4)
                                & Const(cfg.format_mask, 4).bit_select(hdr.arg2[24:26], 1)
                                & ((hdr.arg2[24:] != 0) == a_blocks)),
                ]
                m.next = "CHECK"

            with m.State("CHECK"):
                # The check's total gets a cycle of its own (timing: its carry chain in front of
                # the decision below is the iCE40's longest path otherwise).
                m.d.sync += bad_header.eq(bad_status | ((check_lo + check_hi)[:8] != 0))
                m.next = "DECIDE"

            with m.State("DECIDE"):
                with m.If(bad_header):
                    send_reply(m, hdr.op, Status.BAD_CHECK, hdr.arg0)
                with m.Elif(is_identify):
                    send_reply(m, Op.IDENTIFY, Status.OK, len(cfg.identify_payload()), lb,
                               self.consumed)
                with m.Elif(is_load):
                    with m.If(~a_fmt_ok):
                        send_reply(m, hdr.op, Status.BAD_FORMAT, hdr.arg0)
                    with m.Elif(~n_ok | ~k_ok | (load_blocks & ~a_k32)):
                        send_reply(m, hdr.op, Status.BAD_LENGTH, hdr.arg0)
                    with m.Else():
                        m.d.sync += [size_rows.eq(hdr.arg0),
                                     size_room.eq(cfg.act_depth - hdr.arg1[:18]),
                                     size_last.eq(hdr.arg0 <= cfg.rows),
                                     size_over.eq(hdr.arg1 > cfg.act_depth)]
                        m.next = "SIZE_LOAD_A"
                with m.Elif(is_gemm):
                    with m.If(~n_ok | ~k_ok | ~m_ok):
                        send_reply(m, hdr.op, Status.BAD_LENGTH, hdr.arg0)
                    with m.Elif(~matches_loaded):
                        send_reply(m, hdr.op, Status.NOT_LOADED, hdr.arg0)
                    with m.Elif(~w_fmt_ok):
                        send_reply(m, hdr.op, Status.BAD_FORMAT, hdr.arg0)
                    with m.Else():
                        m.d.sync += [self.m.eq(hdr.arg2[:16]), tile.eq(0),
                                     left.eq(hdr.arg2[:16])]
                        if blocks:
                            m.d.sync += self.fmt.eq(hdr.arg2[24:26])
                        m.next = "START_GEMM"
                with m.Else():
                    send_reply(m, hdr.op, Status.BAD_OPCODE, hdr.arg0)

            with m.State("SIZE_LOAD_A"):
                with m.If(size_over):
                    send_reply(m, hdr.op, Status.BAD_LENGTH, hdr.arg0)
                with m.Elif(size_last):
                    m.d.sync += [
                        self.n.eq(hdr.arg0), self.k.eq(hdr.arg1), self.k_last.eq(hdr.arg1 - 1),
                        loaded.eq(0), loaded_n.eq(hdr.arg0), loaded_k.eq(hdr.arg1), tile.eq(0),
                        left.eq(hdr.arg0), a_blocks.eq(load_blocks), bad_scale.eq(0),
                    ]
                    m.next = "START_LOAD_A"
                with m.Else():
                    m.d.sync += [
                        size_rows.eq(size_rows - cfg.rows),
                        size_room.eq(size_room - hdr.arg1[:18]),
                        size_over.eq((size_room - hdr.arg1[:18])[-1]),
                        size_last.eq(size_rows <= 2 * cfg.rows),
                    ]

            # The strobes come one cycle after DECIDE, once n, k, m are set.
            with m.State("START_LOAD_A"):
                m.d.comb += self.load_start.eq(1)
                tile_shape(m, cfg.rows, load=True)
                m.next = "LOAD_A"

            def after_gemm_tile_shape(m):
                if blocks:
                    with m.If(self.fmt == protocol.Format.INT8):
                        m.next = "GEMM"
                    with m.Else():
                        m.next = "GEMM_GROUPS"
                else:
                    m.next = "GEMM"

            with m.State("START_GEMM"):
                m.d.comb += self.gemm_start.eq(1)
                tile_shape(m, cfg.cols, load=False)
                after_gemm_tile_shape(m)

            with m.State("LOAD_A_TILE"):
                tile_shape(m, cfg.rows, load=True)
                m.next = "LOAD_A"

            with m.State("GEMM_TILE"):
                # The unpacker reads a tile's C' until the tile's last block has left it.
                with m.If((self.fmt == protocol.Format.INT8) | self.unpacker_idle
                          if blocks else 1):
                    tile_shape(m, cfg.cols, load=False)
                    after_gemm_tile_shape(m)

            if blocks:
                with m.State("GEMM_GROUPS"):
                    group_shape(m)
                    m.next = "GEMM"

            with m.State("LOAD_A"):
                payload_state(m, self.act, cfg.rows, "LOAD_A_TILE", "LOADED")

            with m.State("LOADED"):
                with m.If(bad_scale):
                    send_reply(m, Op.LOAD_A, Status.BAD_SCALE, loaded_n)
                with m.Else():
                    m.d.sync += loaded.eq(1)
                    send_reply(m, Op.LOAD_A, Status.OK, loaded_n, loaded_k)

            with m.State("GEMM"):
                if blocks:
                    with m.If(self.fmt == protocol.Format.INT8):
                        payload_state(m, self.wgt, cfg.cols, "GEMM_TILE", "HEADER")
                    with m.Else():
                        group_state(m)
                else:
                    payload_state(m, self.wgt, cfg.cols, "GEMM_TILE", "HEADER")

            with m.State("REPLY"):
                m.d.comb += self.reply.valid.eq(1)
                with m.If(self.reply.ready):
                    m.next = "HEADER"
        return m
