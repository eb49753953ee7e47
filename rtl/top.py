"""The whole device behind a link: link adapter, command decoder, GEMM engine, reply framer."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from systolica.protocol import Feature

from .argmax import ArgMax
from .block_unpacker import BlockUnpacker
from .control import LineErrorsSignature
from .decoder import CommandDecoder
from .dram_access import DramAccess, dram_addr_width, native_port_signature
from .engine import GemmEngine
from .framer import Framer
from .link_adapter import LinkAdapter
from .pair_sum import PairSum
from .row_hold import RowHold
from .skid_buffer import SkidBuffer

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """The accelerator as the link sees it: ``link_bytes``-wide word streams in and out.

    This is what the cocotb tests drive, what the simulated board compiles, and what a board
    wrapper puts behind its UART. ``rx_empty`` is a status output (no received word waiting): a
    board may show it on an LED; the simulated board stops its clock on it while the host catches
    up, so that it measures the array fed at full rate rather than the host's Python.
    ``line_errors`` (`LineErrorsSignature`) are the line's error counts, which IDENTIFY reports:
    a board's UART receiver drives them; links without a line tie them to 0.

    With DRAM (``config.dram_mib``), ``dram`` is a DRAM controller's native port
    (`native_port_signature`) and ``dram_ready`` says the controller is initialized; the board's
    top level holds the controller (`accelerator_dram`).

    Parameters
    ----------
    config : Config
        The one configuration (array size, buffers, link width).
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "link_rx": In(stream.Signature(8 * config.link_bytes)),
            "link_tx": Out(stream.Signature(8 * config.link_bytes)),
            "rx_empty": Out(1),
            "line_errors": In(LineErrorsSignature()),
            **({"dram": Out(native_port_signature(dram_addr_width(config))),
                "dram_ready": In(1)} if config.dram_mib else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.adapter = adapter = LinkAdapter(cfg)
        m.submodules.decoder = decoder = CommandDecoder(cfg)
        m.submodules.engine = engine = GemmEngine(cfg)
        m.submodules.framer = framer = Framer(cfg)

        connect(m, wiring.flipped(self.link_rx), adapter.link_rx)
        connect(m, adapter.link_tx, wiring.flipped(self.link_tx))
        connect(m, adapter.rx, decoder.rx)
        connect(m, framer.tx, adapter.tx)
        connect(m, decoder.act, engine.act)
        connect(m, decoder.wgt, engine.wgt)
        connect(m, decoder.reply, framer.reply)
        connect(m, wiring.flipped(self.line_errors), decoder.line_errors)
        results = engine.results
        if Feature.PAIR_SUM in cfg.features:
            # A GEMM_DRAM's rows in pairs, added (`protocol`'s pair sums).
            m.submodules.pair_sum = pair_sum = PairSum(cfg)
            connect(m, results, pair_sum.i)
            m.d.comb += pair_sum.pair.eq(decoder.control.pair)
            results = pair_sum.o
        if Feature.ARGMAX in cfg.features:
            # A one-row GEMM_DRAM's largest result (`protocol`'s argmax).
            m.submodules.argmax = argmax = ArgMax(cfg)
            connect(m, results, argmax.i)
            m.d.comb += argmax.argmax.eq(decoder.control.argmax)
            results = argmax.o
        if cfg.block_formats or cfg.row_hold:
            # Result rows through a register stage (timing: in a block build a row is read from
            # the scale units' output memories, and from there into the framer's shift register
            # was an 8x16 ECP5 build's critical path, a route across the chip). With
            # `Config.row_hold` it is a `RowHold`, whose wide register the framer never enables.
            stage_kind = RowHold if cfg.row_hold else SkidBuffer
            m.submodules.result_stage = stage = stage_kind(engine.results.payload.shape())
            connect(m, results, stage.i)
            connect(m, stage.o, framer.results)
        else:
            connect(m, results, framer.results)
        connect(m, decoder.control, engine.control, framer.control)
        connect(m, adapter.credit, framer.credit)
        m.d.comb += [
            self.rx_empty.eq(adapter.rx_empty),
            adapter.decoder_idle.eq(decoder.idle),
            decoder.consumed.eq(adapter.credit.consumed),
            decoder.busy.eq(framer.busy),
        ]
        if cfg.block_formats:
            # GGUF blocks: link words → unpacker → one block a beat into the engine.
            m.submodules.unpacker = unpacker = BlockUnpacker(cfg.link_bytes, cfg.cols,
                                                             cfg.block_formats)
            connect(m, decoder.wgt_words, unpacker.words)
            connect(m, decoder.unpacker, unpacker.control)
            connect(m, unpacker.blocks, engine.blocks)
            connect(m, decoder.act_scale, engine.act_scale)
            m.d.comb += framer.bad_scale.eq(engine.bad_scale)
        if cfg.dram_mib:
            m.submodules.dram = dram = DramAccess(dram_addr_width(cfg))
            connect(m, decoder.dram, dram.user)
            connect(m, dram.port, wiring.flipped(self.dram))
            m.d.comb += dram.port_ready.eq(self.dram_ready)
        return m
