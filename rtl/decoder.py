"""Command decoder: parses frames (see `protocol`) from link words and routes their payloads."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import protocol
from .protocol import Op, Status

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
        ``k``, ``m`` hold that command's sizes.
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
            "m": Out(16),
            "busy": In(1),
            "idle": Out(1),
            "consumed": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        lb = cfg.link_bytes
        hdr_words = -(-protocol.HEADER_BYTES // lb)
        vec_words = -(-max(cfg.rows, cfg.cols) // lb)
        word = self.rx.payload

        # Header: shifted in word by word; the first word must start with MAGIC.
        hdr_bits = Signal(8 * lb * hdr_words)
        hdr = Header(hdr_bits[:128])
        hdr_count = Signal(range(hdr_words + 1))

        # Payload vectors: up to `vec_words` words are gathered into one vector.
        vec = Signal(8 * lb * vec_words)
        vec_next = Signal.like(vec)
        vec_len = Signal(range(max(cfg.rows, cfg.cols) + 1))   # valid bytes in this tile's vectors
        vec_last_word = Signal(range(vec_words))
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

        def start_tile(m, remaining, size):
            valid = Mux(remaining > size, size, remaining)
            m.d.sync += [
                left.eq(remaining),
                vec_len.eq(valid),
                vec_last_word.eq(((valid + lb - 1) >> _ceil_log2(lb)) - 1),
                word_idx.eq(0),
                step.eq(0),
            ]

        def next_vector(m, size, done_state):
            """Advance word/step/tile counters after a vector has been taken."""
            with m.If(step == self.k - 1):
                with m.If(left <= size):
                    m.next = done_state
                with m.Else():
                    m.d.sync += tile.eq(tile + 1)
                    start_tile(m, left - size, size)
            with m.Else():
                m.d.sync += [step.eq(step + 1), word_idx.eq(0)]

        def payload_state(m, out, size, done_state):
            last_word = word_idx == vec_last_word
            m.d.comb += [
                out.valid.eq(self.rx.valid & last_word),
                self.rx.ready.eq(~last_word | out.ready),
            ]
            with m.If(self.rx.valid & self.rx.ready):
                m.d.sync += vec.eq(vec_next)
                with m.If(last_word):
                    next_vector(m, size, done_state)
                with m.Else():
                    m.d.sync += word_idx.eq(word_idx + 1)

        def send_reply(m, op, status, arg0=0, arg1=0, arg2=0):
            m.d.sync += [reply.op.eq(op | protocol.REPLY), reply.status.eq(status),
                         reply.arg0.eq(arg0), reply.arg1.eq(arg1), reply.arg2.eq(arg2)]
            m.next = "REPLY"

        checksum = Signal(8)
        m.d.comb += checksum.eq(sum(hdr_bits.word_select(i, 8) for i in range(16)))
        n_ok = (hdr.arg0 >= 1) & (hdr.arg0 <= 0xFFFF)
        k_ok = (hdr.arg1 >= 1) & (hdr.arg1 <= cfg.max_k)
        m_ok = (hdr.arg2 >= 1) & (hdr.arg2 <= 0xFFFF)

        # LOAD_A's size check, ceil(N / rows) * K <= act_depth, done sequentially (no divider or
        # multiplier in the fabric): rows of A are counted off a tile at a time while the words
        # they need are added up; it stops as soon as the buffer would overflow, so it takes at
        # most min(ceil(N / rows), act_depth // K + 1) cycles.
        size_rows = Signal(17)
        size_words = Signal(range(cfg.act_depth + cfg.max_k + 1))

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
                            m.next = "CHECK"
                        with m.Else():
                            m.d.sync += hdr_count.eq(hdr_count + 1)

            with m.State("CHECK"):
                with m.If((checksum != 0) | (hdr.status != 0)):
                    send_reply(m, hdr.op, Status.BAD_CHECK, hdr.arg0)
                with m.Elif(hdr.op == Op.IDENTIFY):
                    send_reply(m, Op.IDENTIFY, Status.OK, len(cfg.identify_payload()), lb,
                               self.consumed)
                with m.Elif(hdr.op == Op.LOAD_A):
                    with m.If(~n_ok | ~k_ok):
                        send_reply(m, hdr.op, Status.BAD_LENGTH, hdr.arg0)
                    with m.Else():
                        m.d.sync += [size_rows.eq(hdr.arg0), size_words.eq(0)]
                        m.next = "SIZE_LOAD_A"
                with m.Elif(hdr.op == Op.GEMM):
                    with m.If(~n_ok | ~k_ok | ~m_ok):
                        send_reply(m, hdr.op, Status.BAD_LENGTH, hdr.arg0)
                    with m.Elif(~loaded | (hdr.arg0 != loaded_n) | (hdr.arg1 != loaded_k)):
                        send_reply(m, hdr.op, Status.NOT_LOADED, hdr.arg0)
                    with m.Else():
                        m.d.sync += [self.m.eq(hdr.arg2), tile.eq(0)]
                        start_tile(m, hdr.arg2[:17], cfg.cols)
                        m.next = "START_GEMM"
                with m.Else():
                    send_reply(m, hdr.op, Status.BAD_OPCODE, hdr.arg0)

            with m.State("SIZE_LOAD_A"):
                words = size_words + hdr.arg1[:18]
                with m.If(words > cfg.act_depth):
                    send_reply(m, hdr.op, Status.BAD_LENGTH, hdr.arg0)
                with m.Elif(size_rows <= cfg.rows):
                    m.d.sync += [
                        self.n.eq(hdr.arg0), self.k.eq(hdr.arg1),
                        loaded.eq(0), loaded_n.eq(hdr.arg0), loaded_k.eq(hdr.arg1), tile.eq(0),
                    ]
                    start_tile(m, hdr.arg0[:17], cfg.rows)
                    m.next = "START_LOAD_A"
                with m.Else():
                    m.d.sync += [size_rows.eq(size_rows - cfg.rows), size_words.eq(words)]

            # The strobes come one cycle after CHECK, once n, k, m and the tile counts are set.
            with m.State("START_LOAD_A"):
                m.d.comb += self.load_start.eq(1)
                m.next = "LOAD_A"

            with m.State("START_GEMM"):
                m.d.comb += self.gemm_start.eq(1)
                m.next = "GEMM"

            with m.State("LOAD_A"):
                payload_state(m, self.act, cfg.rows, "LOADED")

            with m.State("LOADED"):
                m.d.sync += loaded.eq(1)
                send_reply(m, Op.LOAD_A, Status.OK, loaded_n, loaded_k)

            with m.State("GEMM"):
                payload_state(m, self.wgt, cfg.cols, "HEADER")

            with m.State("REPLY"):
                m.d.comb += self.reply.valid.eq(1)
                with m.If(self.reply.ready):
                    m.next = "HEADER"
        return m
