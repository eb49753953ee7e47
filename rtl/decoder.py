"""Command decoder: the header parser and the payload router, sharing the received words."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .control import GemmControlSignature, UnpackerControlSignature
from .header_parser import HeaderParser
from .payload_router import PayloadRouter

__all__ = ["CommandDecoder"]


class CommandDecoder(wiring.Component):
    """Parses frames (see `protocol`) from link words and routes their payloads.

    A `HeaderParser` takes the words while a header is parsed and answers what needs no payload;
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
    """

    def __init__(self, config):
        self._config = config
        cfg = config
        self._parser = HeaderParser(cfg)
        self._router = PayloadRouter(cfg)
        # The halves' own streams and status ports, as they declare them.
        parser_ports = self._parser.signature.members
        router_ports = self._router.signature.members
        streams = ("act", "wgt", "act_scale", "wgt_words") if cfg.block_formats else ("act", "wgt")
        super().__init__({
            "rx": In(stream.Signature(8 * cfg.link_bytes)),
            **{name: router_ports[name] for name in streams},
            **{name: parser_ports[name] for name in ("reply", "busy", "idle", "consumed")},
            "control": Out(GemmControlSignature(cfg)),
            **({"unpacker": Out(UnpackerControlSignature(cfg.cols))} if cfg.block_formats else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.parser = parser = self._parser
        m.submodules.router = router = self._router
        connect(m, parser.router, router.parser)
        connect(m, parser.reply, flipped(self.reply))
        connect(m, router.act, flipped(self.act))
        connect(m, router.wgt, flipped(self.wgt))
        # The received words go to both; the one whose turn it is takes them.
        m.d.comb += [
            parser.rx.payload.eq(self.rx.payload), router.rx.payload.eq(self.rx.payload),
            parser.rx.valid.eq(self.rx.valid), router.rx.valid.eq(self.rx.valid),
            self.rx.ready.eq(parser.rx.ready | router.rx.ready),
            self.control.load_start.eq(router.load_start),
            self.control.gemm_start.eq(router.gemm_start),
            self.control.n.eq(parser.n), self.control.k.eq(parser.k),
            self.control.k_last.eq(parser.k_last), self.control.m.eq(parser.m),
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
        return m
