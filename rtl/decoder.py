"""Command decoder: the header parser and the payload router, sharing the received words."""

from amaranth.hdl import Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.crc import catalog
from amaranth.lib.wiring import In, Out, connect, flipped

from systolica.protocol import Status

from .control import SHARED_CRC_DELAY, GemmControlSignature, UnpackerControlSignature
from .dram_access import DramAccessSignature, dram_addr_width
from .header_parser import HeaderParser
from .idle_abort import IdleAbort
from .payload_router import PayloadRouter

__all__ = ["CommandDecoder"]


class CommandDecoder(wiring.Component):
    """Parses frames (see `protocol`) from link words and routes their payloads.

    The received words pass an `IdleAbort` (a frame that stops arriving is dropped, and an
    aborted payload is made up to its end). A `HeaderParser` takes the words while a header is
    parsed and answers what needs no payload;
    an accepted LOAD_A or GEMM goes to a `PayloadRouter`, which takes the words until the
    payload has passed. Only one of the two takes words at a time.

    Ports
    -----
    rx : stream of link words in.
    act, wgt, act_scale, wgt_words : the `PayloadRouter`'s streams (activation vectors, weight
        rows, and with block formats scale vectors and a block GEMM's payload words).
    reply : the `HeaderParser`'s stream of replies for the framer.
    control : `GemmControlSignature` (out): the strobes from the router, the sizes and format
        from the parser.
    unpacker : (block formats) `UnpackerControlSignature` (out) for the block unpacker.
    busy : in; while set (a GEMM is still computing or replying) no new header is parsed.
    idle : out; waiting for a header on a word boundary.
    consumed : in; the link adapter's count of received bytes (reported by IDENTIFY).
    line_errors : `LineErrorsSignature` in; the line's error counts (reported by IDENTIFY).
    dram : (devices with DRAM) `DramAccessSignature` (out): WRITE_DRAM's payload words to the
        DRAM; GEMM_DRAM's stored payload from it, which the router then takes instead of the
        link's words.
    """

    def __init__(self, config):
        self._config = config
        cfg = config
        self._parser = HeaderParser(cfg, shared_crc=True)
        self._router = PayloadRouter(cfg, shared_crc=True)
        # The halves' own streams and status ports, as they declare them.
        parser_ports = self._parser.signature.members
        router_ports = self._router.signature.members
        streams = ("act", "wgt", "act_scale", "wgt_words") if cfg.block_formats else ("act", "wgt")
        super().__init__({
            "rx": In(stream.Signature(8 * cfg.link_bytes)),
            **{name: router_ports[name] for name in streams},
            **{name: parser_ports[name] for name in ("reply", "busy", "idle", "consumed",
                                                          "line_errors")},
            "control": Out(GemmControlSignature(cfg)),
            **({"unpacker": Out(UnpackerControlSignature(cfg.cols))} if cfg.block_formats else {}),
            **({"dram": Out(DramAccessSignature(dram_addr_width(cfg)))} if cfg.dram_mib else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.parser = parser = self._parser
        m.submodules.router = router = self._router
        connect(m, parser.router, router.parser)
        # One CRC-32 processor for both halves (logic cells): their turns never overlap. The
        # header window feeds it (and starts it) only in its rotation, while the parser is in
        # HEADER and the router idle; the router starts it (START) and feeds it only between
        # taking a command and ``done``, while the window waits, not hunting. Each starts it
        # over before its words and reads ``match_detected`` before the other's turn. Its inputs
        # pass a register (`SHARED_CRC_DELAY`; both halves wait the cycle it costs), so that the
        # word-accept chain ends there and not at the enables of the CRC's 32 flip-flops.
        m.submodules.crc = crc = catalog.CRC32_ISO_HDLC(data_width=8 * cfg.link_bytes).create()
        hunt, route = parser.crc, router.crc
        assert SHARED_CRC_DELAY == 1
        m.d.sync += [
            crc.valid.eq(hunt.valid | route.valid),
            crc.start.eq(hunt.start | route.start),
            crc.data.eq(Mux(hunt.valid, hunt.data, route.data)),
        ]
        m.d.comb += [
            hunt.match_detected.eq(crc.match_detected),
            route.match_detected.eq(crc.match_detected),
        ]
        connect(m, parser.reply, flipped(self.reply))
        connect(m, flipped(self.line_errors), parser.line_errors)
        connect(m, router.act, flipped(self.act))
        connect(m, router.wgt, flipped(self.wgt))
        # The idle abort watches the received words; they go on to both halves, and the one
        # whose turn it is takes them.
        if cfg.abort_cycles:
            m.submodules.abort = abort = IdleAbort(cfg)
            connect(m, flipped(self.rx), abort.i)
            rx, aborted = abort.o, abort.aborted
            start = router.load_start | router.gemm_start
            if cfg.dram_mib:
                start = start | router.store_start
            m.d.comb += [
                abort.idle.eq(parser.idle), abort.routing.eq(router.routing),
                abort.start.eq(start),
                parser.abort.eq(abort.abort), parser.aborted.eq(abort.aborted),
            ]
        else:                           # no idle abort (`Config.abort_cycles` = 0)
            rx, aborted = self.rx, 0
        status = Mux(aborted, Status.ABORTED, Mux(router.parser.bad_crc, Status.BAD_CRC, 0))
        m.d.comb += [
            parser.rx.payload.eq(rx.payload), router.rx.payload.eq(rx.payload),
            parser.rx.valid.eq(rx.valid), router.rx.valid.eq(rx.valid),
            rx.ready.eq(parser.rx.ready | router.rx.ready),
            self.control.load_start.eq(router.load_start),
            self.control.gemm_start.eq(router.gemm_start),
            self.control.payload_done.eq(router.payload_done),
            self.control.payload_status.eq(status),
            self.control.tag.eq(parser.tag),
            self.control.n.eq(parser.n), self.control.k.eq(parser.k),
            self.control.k_last.eq(parser.k_last), self.control.m.eq(parser.m),
            *(getattr(self.control, flag).eq(getattr(parser, flag)) for flag in ("pair", "argmax")
              if flag in parser.signature.members),
            self.idle.eq(parser.idle),
            parser.busy.eq(self.busy), parser.consumed.eq(self.consumed),
        ]
        if cfg.block_formats:
            connect(m, router.act_scale, flipped(self.act_scale))
            connect(m, router.wgt_words, flipped(self.wgt_words))
            m.d.comb += [
                self.control.act_blocks.eq(parser.act_blocks), self.control.fmt.eq(parser.fmt),
                self.unpacker.fmt.eq(parser.fmt),
                self.unpacker.group_blocks.eq(router.group_blocks),
                router.unpacker_idle.eq(self.unpacker.idle),
            ]
        if cfg.dram_mib:
            self._dram(m, parser, router, rx)   # after the link's: these assignments win
        return m

    def _dram(self, m, parser, router, rx):
        """The router's words from the link, or (GEMM_DRAM) from the DRAM reader: its words,
        then zero words once the run has ended (a stored payload too short fails its CRC
        check); what is left of the run after the payload is dropped (``dram_drain``).
        WRITE_DRAM's payload words go from the router to the writer (DRAM_CHECK's nowhere)."""
        dram = self.dram
        read = dram.read_data
        from_dram = parser.from_dram
        m.d.comb += [
            router.rx.payload.eq(Mux(from_dram, Mux(read.valid, read.payload, 0), rx.payload)),
            router.rx.valid.eq(Mux(from_dram, read.valid | ~dram.read_busy, rx.valid)),
            read.ready.eq(parser.dram_drain | from_dram & router.rx.ready),
            rx.ready.eq(parser.rx.ready | ~from_dram & router.rx.ready),
            parser.dram_ready.eq(dram.ready),
            parser.dram_write_busy.eq(dram.write_busy),
            parser.dram_read_busy.eq(dram.read_busy),
            self.control.stored.eq(from_dram),
        ]
        connect(m, parser.dram_write, flipped(dram.write_req))
        connect(m, parser.dram_read, flipped(dram.read_req))
        write = dram.write_data          # DRAM_CHECK's words (from the DRAM) go nowhere
        m.d.comb += [
            write.payload.eq(router.store.payload),
            write.valid.eq(router.store.valid & ~from_dram),
            router.store.ready.eq(write.ready | from_dram),
        ]
