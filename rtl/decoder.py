"""Command decoder: the header parser and the payload router, sharing the received words."""

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .frame_layouts import Reply
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
    act : stream of activation vectors (``rows`` int8) for the activation buffer, in LOAD_A order.
    wgt : stream of weight rows (``cols`` int8) for the weight banks, in GEMM order.
    reply : stream of replies for the framer (LOAD_A done, IDENTIFY, errors).
    load_start, gemm_start : one-cycle strobes when a LOAD_A / GEMM starts; ``n``, ``k``, ``m``
        hold that command's sizes (``k_last`` = K - 1, registered for timing).
    busy : in; while set (a GEMM is still computing or replying) no new header is parsed.
    idle : out; waiting for a header on a word boundary.
    consumed : in; the link adapter's count of received bytes (reported by IDENTIFY).
    act_scale, act_blocks, wgt_words, group_blocks, fmt, unpacker_idle : (block formats) the
        activations' scale vectors and whether A is in 32-blocks; a block GEMM's payload words,
        blocks a group and weight format for the unpacker; the unpacker has finished a tile.
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
        m.submodules.parser = parser = HeaderParser(cfg)
        m.submodules.router = router = PayloadRouter(cfg)
        connect(m, parser.router, router.parser)
        connect(m, parser.reply, flipped(self.reply))
        connect(m, router.act, flipped(self.act))
        connect(m, router.wgt, flipped(self.wgt))
        # The received words go to both; the one whose turn it is takes them.
        m.d.comb += [
            parser.rx.payload.eq(self.rx.payload), router.rx.payload.eq(self.rx.payload),
            parser.rx.valid.eq(self.rx.valid), router.rx.valid.eq(self.rx.valid),
            self.rx.ready.eq(parser.rx.ready | router.rx.ready),
            self.load_start.eq(router.load_start), self.gemm_start.eq(router.gemm_start),
            self.n.eq(parser.n), self.k.eq(parser.k), self.k_last.eq(parser.k_last),
            self.m.eq(parser.m), self.idle.eq(parser.idle),
            parser.busy.eq(self.busy), parser.consumed.eq(self.consumed),
        ]
        if cfg.block_formats:
            connect(m, router.act_scale, flipped(self.act_scale))
            connect(m, router.wgt_words, flipped(self.wgt_words))
            m.d.comb += [
                self.act_blocks.eq(parser.act_blocks), self.fmt.eq(parser.fmt),
                self.group_blocks.eq(router.group_blocks),
                router.unpacker_idle.eq(self.unpacker_idle),
            ]
        return m
