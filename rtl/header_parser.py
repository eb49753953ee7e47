"""Header parser: frames' headers in, checked; replies, and accepted commands for the router."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from systolica import protocol
from systolica.protocol import Feature, Status

from .command import CommandSignature
from .control import CrcPortSignature, LineErrorsSignature
from .frame_layouts import Reply
from .header_check import HeaderCheck
from .header_decision import command_out, decide
from .header_parser_dram import DramStates, dram_parser_ports
from .header_window import HeaderWindow
from .load_size_check import LoadSizeCheck

__all__ = ["HeaderParser"]


def _log2(value):
    return value.bit_length() - 1


class HeaderParser(wiring.Component):
    """Takes link words until a header is found, checks it, and answers or hands it on.

    A `HeaderWindow` finds the next header whose CRC holds (see `protocol`); a candidate whose
    CRC fails is dropped without a reply. The header's status, sizes, format and (GEMM) the
    loaded A are checked by a `HeaderCheck` in a registered step (VALIDATE; DECIDE acts on its
    verdict); LOAD_A's buffer size by a `LoadSizeCheck` in SIZE_LOAD_A, one cycle per row tile.
    A header that is not followed through gets an error reply (IDENTIFY its reply), and then
    its payload, if its ``length`` is whole words, is skipped by that length (SKIP: not searched
    for headers). An accepted LOAD_A or GEMM goes to the payload router from HAND_ON, and the
    parser waits for the router's ``done``, which comes once the payload's CRC word has been
    checked (LOAD_A then replies). Every reply carries the command's tag.

    Ports
    -----
    rx : stream of link words in; taken only while a header is being parsed.
    reply : stream of `Reply` for the framer (IDENTIFY, LOAD_A done, errors).
    router : `CommandSignature`: accepted commands out; their end, payload CRC and (LOAD_A)
        scale check in.
    n, k, k_last, m : the current command's sizes (LOAD_A sets N and K, GEMM sets M), for the
        engine and the framer; valid from the cycle after the command is handed on.
    fmt, act_blocks : (block formats) the GEMM's weight format; the loaded A is in 32-blocks.
    pair, argmax : (devices with pair sums, argmax) the GEMM is a GEMM_DRAM with
        `protocol.PAIR_SUM`, `protocol.ARGMAX`.
    busy : in; while set (a GEMM still computing or replying) no header is parsed.
    idle : out; waiting for a header on a word boundary.
    consumed : in; the link adapter's count of received bytes (reported by IDENTIFY).
    line_errors : `LineErrorsSignature` in; the line's error counts (reported by IDENTIFY).
    tag : out; the current command's tag (its RESULT frames and GEMM reply carry it).
    abort : in; the idle abort: drop the header or skipped payload in hand.
    aborted : in; the command being routed was aborted (LOAD_A then replies ``ABORTED``).
    crc : (``shared_crc``) the header window's `CrcPortSignature`, for a processor outside.
    dram_write, dram_read, dram_ready, dram_write_busy, dram_read_busy, from_dram, dram_drain :
        (devices with DRAM) see `header_parser_dram`.
    """

    def __init__(self, config, *, shared_crc=False):
        self._config = config
        self._shared_crc = shared_crc
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
            "line_errors": In(LineErrorsSignature()),
            "tag": Out(8),
            "abort": In(1),
            "aborted": In(1),
            **({"fmt": Out(2), "act_blocks": Out(1)} if cfg.block_formats else {}),
            **({"pair": Out(1)} if Feature.PAIR_SUM in cfg.features else {}),
            **({"argmax": Out(1)} if Feature.ARGMAX in cfg.features else {}),
            **({"crc": Out(CrcPortSignature(8 * cfg.link_bytes))} if shared_crc else {}),
            **(dram_parser_ports(cfg) if cfg.dram_mib else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        lb = cfg.link_bytes
        m.submodules.window = window = HeaderWindow(cfg, shared_crc=self._shared_crc)
        if self._shared_crc:
            connect(m, window.crc, flipped(self.crc))
        hdr = window.header

        loaded = Signal()                # an A is loaded: GEMMs of its N and K are accepted
        loaded_n = Signal(16)
        loaded_k = Signal.like(self.k)
        a_blocks = Signal()              # the loaded A is in 32-blocks
        # The reply is made from the header in the window, which holds it until the next header
        # is hunted (after the reply): only its status and which arguments it carries are kept.
        reply_status = Signal(4)
        reply_identify = Signal()        # IDENTIFY's reply: payload length, link bytes, consumed
        reply_loaded = Signal()          # LOAD_A's OK reply: N and K
        # A rejected header's payload is skipped by its length: its words and its CRC word.
        # (one bit more than a length's words: on a 1-byte link, a length near 2**32 and the
        # CRC word's 4 words overflowed 32 bits, and a few bytes were skipped, not the payload)
        skip_left = Signal(33 - _log2(lb))
        skip_ok = Signal()
        then_skip = Signal()             # after this reply, skip

        # The header's checks: registered in VALIDATE, acted on in DECIDE.
        m.submodules.check = check = HeaderCheck(cfg)
        self._check_dram = check.dram if cfg.dram_mib else None
        m.d.comb += [check.header.eq(hdr), check.loaded.eq(loaded), check.loaded_n.eq(loaded_n),
                     check.loaded_k.eq(loaded_k), check.a_blocks.eq(a_blocks)]
        v = check.verdict

        m.submodules.size = size = LoadSizeCheck(cfg)
        m.d.comb += [size.n.eq(hdr.arg0), size.k.eq(hdr.arg1)]

        cmd = self.router.cmd
        command_out(self, m, cfg, self._check_dram, v, hdr, a_blocks)
        dram = DramStates(self, check.dram, hdr) if cfg.dram_mib else None
        self._reply_fields(m, window, hdr, reply_status, reply_identify, reply_loaded)

        def send_reply(m, status, *, identify=False, loaded=False, skip=True):
            """Reply (to the header in the window); then, for a header that is not followed
            through, skip its payload."""
            m.d.sync += [reply_status.eq(status), reply_identify.eq(identify),
                         reply_loaded.eq(loaded), then_skip.eq(skip_ok if skip else 0)]
            m.next = "REPLY"

        def hand_on(m):
            """The command goes to the router, from a state of its own (timing: offered from
            DECIDE, the verdict's priority chain reached the router's registers' enables, the
            iCEBreaker's critical path)."""
            m.next = "HAND_ON"

        with m.FSM():
            with m.State("HEADER"):
                self._header_state(m, window, hdr, skip_left, skip_ok)

            with m.State("VALIDATE"):
                m.next = "DECIDE"

            with m.State("DECIDE"):
                decide(self, m, cfg, v, hdr, size, send_reply, hand_on, dram)

            with m.State("SIZE_LOAD_A"):
                with m.If(size.over):
                    send_reply(m, Status.BAD_LENGTH)
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
                # The router moves the payload and checks its CRC; LOAD_A replies then.
                with m.If(self.router.done):
                    with m.If(v.is_load):
                        m.next = "LOADED"
                    with m.Else():
                        m.next = "HEADER"
                        if dram:
                            dram.after_route(m)

            if dram:
                dram.states(m, send_reply, hand_on)

            with m.State("LOADED"):
                with m.If(self.aborted):
                    send_reply(m, Status.ABORTED, skip=False)
                with m.Elif(self.router.bad_crc):
                    send_reply(m, Status.BAD_CRC, skip=False)
                with m.Elif(self.router.bad_scale):
                    send_reply(m, Status.BAD_SCALE, skip=False)
                with m.Else():
                    m.d.sync += loaded.eq(1)
                    send_reply(m, Status.OK, loaded=True, skip=False)

            with m.State("REPLY"):
                m.d.comb += self.reply.valid.eq(1)
                with m.If(self.reply.ready):
                    m.next = "HEADER"
                    with m.If(then_skip):
                        m.next = "SKIP"

            with m.State("SKIP"):
                self._skip(m, skip_left)
        return m

    def _reply_fields(self, m, window, hdr, reply_status, reply_identify, reply_loaded):
        """The reply's fields, from the header in the window and what was kept of the decision
        (its status, and whether it is IDENTIFY's or LOAD_A's OK reply); and the window's
        input."""
        cfg, lb = self._config, self._config.link_bytes
        m.d.comb += [
            self.reply.payload.op.eq(hdr.op | protocol.REPLY),
            self.reply.payload.status.eq(reply_status),
            self.reply.payload.tag.eq(self.tag),
            self.reply.payload.arg0.eq(Mux(reply_identify, len(cfg.identify_payload()),
                                           hdr.arg0)),
            self.reply.payload.arg1.eq(Mux(reply_identify, lb,
                                           Mux(reply_loaded, hdr.arg1, 0))),
            self.reply.payload.arg2.eq(Mux(reply_identify, self.consumed, 0)),
            self.reply.payload.info.eq(Mux(reply_identify, Cat(self.line_errors.framing,
                                                               self.line_errors.overruns), 0)),
            window.rx.payload.eq(self.rx.payload),
            window.rx.valid.eq(self.rx.valid),
        ]

    def _header_state(self, m, window, hdr, skip_left, skip_ok):
        """HEADER: the window hunts for a header (not while a GEMM's replies are under way);
        a found one's tag and the length to skip if it is rejected are kept."""
        lb = self._config.link_bytes
        m.d.comb += [
            self.idle.eq(window.idle),
            window.hunting.eq(~self.busy),
            self.rx.ready.eq(window.rx.ready),
            window.take.eq(1),
            window.clear.eq(self.abort),
        ]
        with m.If(window.found):
            m.d.sync += [
                self.tag.eq(hdr.tag),
                skip_left.eq((hdr.length >> _log2(lb)) + protocol.words(
                    protocol.crc_word_bytes(lb), lb)),
                skip_ok.eq((hdr.length != 0) & (hdr.length[:_log2(lb)] == 0)
                           if lb > 1 else hdr.length != 0),
            ]
            m.next = "VALIDATE"

    def _skip(self, m, skip_left):
        """SKIP: a rejected header's payload and its CRC word (``skip_left`` words) go by, not
        searched for headers; the idle abort ends it too."""
        m.d.comb += self.rx.ready.eq(1)
        with m.If(self.rx.valid):
            m.d.sync += skip_left.eq(skip_left - 1)
        with m.If((self.rx.valid & (skip_left == 1)) | self.abort):
            m.next = "HEADER"

