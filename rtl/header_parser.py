"""Header parser: frames' headers in, checked; replies, and accepted commands for the router."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from systolica import protocol
from systolica.protocol import Op, Status

from .command import CommandSignature
from .frame_layouts import Header, Reply

__all__ = ["HeaderParser"]


class HeaderParser(wiring.Component):
    """Takes link words until a header is whole, checks it, and answers or hands it on.

    A header's first word must start with ``MAGIC`` (other words are skipped as idle fill). Its
    check byte, status, sizes, format and (GEMM) the loaded A are checked in registered steps
    (VALIDATE, CHECK, DECIDE; LOAD_A's buffer size in SIZE_LOAD_A, one cycle per row tile). A
    bad header gets an error reply; IDENTIFY its reply; an accepted LOAD_A or GEMM goes to the
    payload router, and the parser waits for the router's ``done`` (LOAD_A then replies).

    Ports
    -----
    rx : stream of link words in; taken only while a header is being parsed.
    reply : stream of `Reply` for the framer (IDENTIFY, LOAD_A done, errors).
    router : `CommandSignature`: accepted commands out, their end (and LOAD_A's scale check) in.
    n, k, k_last, m : the current command's sizes (LOAD_A sets N and K, GEMM sets M), for the
        engine and the framer; valid from the cycle after the command is handed on.
    fmt, act_blocks : (block formats) the GEMM's weight format; the loaded A is in 32-blocks.
    busy : in; while set (a GEMM still computing or replying) no header is parsed.
    idle : out; waiting for a header on a word boundary.
    consumed : in; the link adapter's count of received bytes (reported by IDENTIFY).
    """

    def __init__(self, config):
        self._config = config
        cfg = config
        super().__init__({
            "rx": In(stream.Signature(8 * cfg.link_bytes)),
            "reply": Out(stream.Signature(Reply)),
            "router": Out(CommandSignature(cfg)),
            "n": Out(16),
            "k": Out(range(cfg.max_k + 1)),
            "k_last": Out(range(cfg.max_k)),
            "m": Out(16),
            "busy": In(1),
            "idle": Out(1),
            "consumed": In(32),
            **({"fmt": Out(2), "act_blocks": Out(1)} if cfg.block_formats else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        lb = cfg.link_bytes
        hdr_words = protocol.words(protocol.HEADER_BYTES, lb)
        blocks = bool(cfg.block_formats)
        word = self.rx.payload

        # The header, shifted in word by word.
        hdr_bits = Signal(8 * lb * hdr_words)
        hdr = Header(hdr_bits[:128])
        hdr_count = Signal(range(hdr_words + 1))

        loaded = Signal()                # an A is loaded: GEMMs of its N and K are accepted
        loaded_n = Signal(16)
        loaded_k = Signal.like(self.k)
        a_blocks = Signal()              # the loaded A is in 32-blocks
        reply = Signal(Reply)

        # The header's checks, registered in VALIDATE and CHECK before DECIDE acts on them.
        check_lo = Signal(8)
        check_hi = Signal(8)
        bad_status = Signal()
        bad_header = Signal()            # the check failed or the status field is not 0
        n_ok = Signal()
        k_ok = Signal()
        m_ok = Signal()
        matches_loaded = Signal()
        is_identify = Signal()
        is_load = Signal()
        is_gemm = Signal()
        a_fmt_ok = Signal()
        a_k32 = Signal()
        load_blocks = Signal()           # this LOAD_A asks for 32-blocks
        w_fmt_ok = Signal()

        # LOAD_A's size check, ceil(N / rows) * K <= act_depth, done sequentially (no divider or
        # multiplier in the fabric): rows of A are counted off a tile at a time while the words
        # they need are added up; it stops as soon as the buffer would overflow, so it takes at
        # most min(ceil(N / rows), act_depth // K + 1) cycles.
        size_rows = Signal(17)           # rows from the current tile on
        size_room = Signal(range(-cfg.max_k - 1, cfg.act_depth + 1))  # buffer words left after it
        size_last = Signal()             # the current tile is the last
        size_over = Signal()             # size_room went negative

        cmd = self.router.cmd
        m.d.comb += [
            self.reply.payload.eq(reply),
            cmd.payload.load.eq(is_load),
            cmd.payload.size.eq(Mux(is_load, hdr.arg0[:16], hdr.arg2[:16])),
            cmd.payload.k_last.eq(hdr.arg1 - 1),
        ]
        if blocks:
            m.d.comb += [
                self.act_blocks.eq(a_blocks),
                cmd.payload.blocks.eq(Mux(is_load, load_blocks, a_blocks)),
                cmd.payload.fmt.eq(Mux(is_load, 0, hdr.arg2[24:26])),
            ]

        def send_reply(m, op, status, arg0=0, arg1=0, arg2=0):
            m.d.sync += [reply.op.eq(op | protocol.REPLY), reply.status.eq(status),
                         reply.arg0.eq(arg0), reply.arg1.eq(arg1), reply.arg2.eq(arg2)]
            m.next = "REPLY"

        def hand_on(m):
            """The command goes to the router (idle whenever the parser decides)."""
            m.d.comb += cmd.valid.eq(1)
            with m.If(cmd.ready):
                m.next = "ROUTE"

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
                        m.d.sync += self.m.eq(hdr.arg2[:16])
                        if blocks:
                            m.d.sync += self.fmt.eq(hdr.arg2[24:26])
                        hand_on(m)
                with m.Else():
                    send_reply(m, hdr.op, Status.BAD_OPCODE, hdr.arg0)

            with m.State("SIZE_LOAD_A"):
                with m.If(size_over):
                    send_reply(m, hdr.op, Status.BAD_LENGTH, hdr.arg0)
                with m.Elif(size_last):
                    m.d.sync += [
                        self.n.eq(hdr.arg0), self.k.eq(hdr.arg1), self.k_last.eq(hdr.arg1 - 1),
                        loaded.eq(0), loaded_n.eq(hdr.arg0), loaded_k.eq(hdr.arg1),
                        a_blocks.eq(load_blocks),
                    ]
                    hand_on(m)
                with m.Else():
                    m.d.sync += [
                        size_rows.eq(size_rows - cfg.rows),
                        size_room.eq(size_room - hdr.arg1[:18]),
                        size_over.eq((size_room - hdr.arg1[:18])[-1]),
                        size_last.eq(size_rows <= 2 * cfg.rows),
                    ]

            with m.State("ROUTE"):
                # The router moves the payload; LOAD_A replies once it has all of A.
                with m.If(self.router.done):
                    with m.If(is_load):
                        m.next = "LOADED"
                    with m.Else():
                        m.next = "HEADER"

            with m.State("LOADED"):
                with m.If(self.router.bad_scale):
                    send_reply(m, Op.LOAD_A, Status.BAD_SCALE, loaded_n)
                with m.Else():
                    m.d.sync += loaded.eq(1)
                    send_reply(m, Op.LOAD_A, Status.OK, loaded_n, loaded_k)

            with m.State("REPLY"):
                m.d.comb += self.reply.valid.eq(1)
                with m.If(self.reply.ready):
                    m.next = "HEADER"
        return m
