"""Header parser: frames' headers in, checked; replies, and accepted commands for the router."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from systolica import protocol
from systolica.protocol import Op, Status

from .command import CommandSignature
from .frame_layouts import Header, Reply
from .header_check import HeaderCheck
from .load_size_check import LoadSizeCheck

__all__ = ["HeaderParser"]


class HeaderParser(wiring.Component):
    """Takes link words until a header is whole, checks it, and answers or hands it on.

    A header's first word must start with ``MAGIC`` (other words are skipped as idle fill). Its
    check byte, status, sizes, format and (GEMM) the loaded A are checked by a `HeaderCheck`
    in registered steps (VALIDATE, CHECK; DECIDE acts on its verdict); LOAD_A's buffer size by
    a `LoadSizeCheck` in SIZE_LOAD_A, one cycle per row tile. A
    bad header gets an error reply; IDENTIFY its reply; an accepted LOAD_A or GEMM goes to the
    payload router from HAND_ON, and the parser waits for the router's ``done`` (LOAD_A then
    replies).

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

        # The header's checks: registered over VALIDATE and CHECK, acted on in DECIDE.
        m.submodules.check = check = HeaderCheck(cfg)
        m.d.comb += [check.header.eq(hdr), check.loaded.eq(loaded), check.loaded_n.eq(loaded_n),
                     check.loaded_k.eq(loaded_k), check.a_blocks.eq(a_blocks)]
        v = check.verdict

        m.submodules.size = size = LoadSizeCheck(cfg)
        m.d.comb += [size.n.eq(hdr.arg0), size.k.eq(hdr.arg1)]

        cmd = self.router.cmd
        m.d.comb += [
            self.reply.payload.eq(reply),
            cmd.payload.load.eq(v.is_load),
            cmd.payload.size.eq(Mux(v.is_load, hdr.arg0[:16], hdr.arg2[:16])),
            cmd.payload.k_last.eq(hdr.arg1 - 1),
        ]
        if blocks:
            m.d.comb += [
                self.act_blocks.eq(a_blocks),
                cmd.payload.blocks.eq(Mux(v.is_load, v.load_blocks, a_blocks)),
                cmd.payload.fmt.eq(Mux(v.is_load, 0, hdr.arg2[24:26])),
            ]

        def send_reply(m, op, status, arg0=0, arg1=0, arg2=0):
            m.d.sync += [reply.op.eq(op | protocol.REPLY), reply.status.eq(status),
                         reply.arg0.eq(arg0), reply.arg1.eq(arg1), reply.arg2.eq(arg2)]
            m.next = "REPLY"

        def hand_on(m):
            """The command goes to the router, from a state of its own (timing: offered from
            DECIDE, the verdict's priority chain reached the router's registers' enables, the
            iCEBreaker's critical path)."""
            m.next = "HAND_ON"

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
                m.next = "CHECK"

            with m.State("CHECK"):
                m.next = "DECIDE"

            with m.State("DECIDE"):
                self._decide(m, v, hdr, size, send_reply, hand_on)

            with m.State("SIZE_LOAD_A"):
                with m.If(size.over):
                    send_reply(m, hdr.op, Status.BAD_LENGTH, hdr.arg0)
                with m.Elif(size.last):
                    m.d.sync += [
                        self.n.eq(hdr.arg0), self.k.eq(hdr.arg1), self.k_last.eq(hdr.arg1 - 1),
                        loaded.eq(0), loaded_n.eq(hdr.arg0), loaded_k.eq(hdr.arg1),
                        a_blocks.eq(v.load_blocks),
                    ]
                    hand_on(m)
                with m.Else():
                    m.d.comb += size.step.eq(1)

            with m.State("HAND_ON"):
                m.d.comb += cmd.valid.eq(1)     # the router is idle whenever the parser decides
                with m.If(cmd.ready):
                    m.next = "ROUTE"

            with m.State("ROUTE"):
                # The router moves the payload; LOAD_A replies once it has all of A.
                with m.If(self.router.done):
                    with m.If(v.is_load):
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

    def _decide(self, m, v, hdr, size, send_reply, hand_on):
        """DECIDE: the reply a bad or unsupported header gets, IDENTIFY's, or the command's way
        on (LOAD_A to its size check, GEMM to the router), from the `Verdict` ``v``."""
        cfg = self._config
        lb = cfg.link_bytes
        blocks = bool(cfg.block_formats)
        with m.If(v.bad_header):
            send_reply(m, hdr.op, Status.BAD_CHECK, hdr.arg0)
        with m.Elif(v.is_identify):
            send_reply(m, Op.IDENTIFY, Status.OK, len(cfg.identify_payload()), lb,
                       self.consumed)
        with m.Elif(v.is_load):
            with m.If(~v.a_fmt_ok):
                send_reply(m, hdr.op, Status.BAD_FORMAT, hdr.arg0)
            with m.Elif(~v.n_ok | ~v.k_ok | (v.load_blocks & ~v.a_k32)):
                send_reply(m, hdr.op, Status.BAD_LENGTH, hdr.arg0)
            with m.Else():
                m.d.comb += size.start.eq(1)
                m.next = "SIZE_LOAD_A"
        with m.Elif(v.is_gemm):
            with m.If(~v.n_ok | ~v.k_ok | ~v.m_ok):
                send_reply(m, hdr.op, Status.BAD_LENGTH, hdr.arg0)
            with m.Elif(~v.matches_loaded):
                send_reply(m, hdr.op, Status.NOT_LOADED, hdr.arg0)
            with m.Elif(~v.w_fmt_ok):
                send_reply(m, hdr.op, Status.BAD_FORMAT, hdr.arg0)
            with m.Else():
                m.d.sync += self.m.eq(hdr.arg2[:16])
                if blocks:
                    m.d.sync += self.fmt.eq(hdr.arg2[24:26])
                hand_on(m)
        with m.Else():
            send_reply(m, hdr.op, Status.BAD_OPCODE, hdr.arg0)
