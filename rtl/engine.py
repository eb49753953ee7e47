"""GEMM engine: the activation buffer, the weight banks, the sequencer, the array, the drain and
(block formats) the scale stage, wired together."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from systolica.protocol import Format

from .activation_buffer import ActivationBuffer
from .array import SystolicArray
from .block_fields import block_layout
from .control import GemmControlSignature
from .drain import Drain, ResultRow
from .scale_stage import KEEP_COPY, ScaleStage
from .sequencer import Sequencer
from .skid_buffer import SkidBuffer
from .weight_banks import WeightBanks

__all__ = ["GemmEngine", "ResultRow"]


class GemmEngine(wiring.Component):
    """Computes C = A·W with A held on chip and W streamed through once.

    A LOAD_A fills the activation buffer with ``ceil(N / rows) × K`` vectors (one word of ``rows``
    int8 per row tile and k). A GEMM then streams W as ``ceil(M / cols)`` weight tiles of K rows. Each weight
    tile is written into one of two banks while the other bank is being used: every buffered
    row tile runs K steps against it, so a weight crosses the link once and is used against every
    buffered activation row. Partial tiles need no padding from the host: vectors shorter than the
    array are zero-filled by the decoder and the unused rows/columns are not sent back.

    Results leave as rows of ``cols`` int32 (`ResultRow`), j-major, i-minor.

    The parts: `ActivationBuffer` (A, and its 32-blocks' scales), `WeightBanks` (two W tiles,
    behind a `SkidBuffer` unless `Config.weight_skid` is off),
    `Sequencer` (the steps, and which tile and block each result belongs to), `SystolicArray`,
    `Drain` (result rows out) and, only with block formats, `ScaleStage`.

    Ports
    -----
    act : stream in of activation vectors (``rows`` int8), LOAD_A order.
    wgt : stream in of weight rows (``cols`` int8), GEMM order.
    control : `GemmControlSignature` (in): the commands' strobes, sizes and format.
    results : stream out of `ResultRow`.
    busy : out; a GEMM is running (until its last result row has left).
    act_scale : (block formats) stream in of LOAD_A's scale vectors.
    blocks : (block formats) stream in of unpacked weight blocks.
    bad_scale : (block formats) out; a weight block of this GEMM had an inf/NaN scale.
    """

    def __init__(self, config):
        self._config = config
        cfg = config
        super().__init__({
            "act": In(stream.Signature(data.ArrayLayout(data.signed(8), cfg.rows))),
            "wgt": In(stream.Signature(data.ArrayLayout(data.signed(8), cfg.cols))),
            "control": In(GemmControlSignature(cfg)),
            "results": Out(stream.Signature(ResultRow(cfg))),
            "busy": Out(1),
            **({
                "act_scale": In(stream.Signature(data.ArrayLayout(16, cfg.rows))),
                "blocks": In(stream.Signature(block_layout(cfg.cols))),
                "bad_scale": Out(1),
            } if cfg.block_formats else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        rows, cols = cfg.rows, cfg.cols
        m.submodules.act_buf = act_buf = ActivationBuffer(cfg)
        m.submodules.banks = banks = WeightBanks(cfg)
        blocks = bool(cfg.block_formats)
        m.submodules.array = array = SystolicArray(rows, cols, acc_width=cfg.acc_bits,
                                                   multiplier=cfg.multiplier,
                                                   out_width=cfg.acc_width,
                                                   select_copies=cfg.readout_copies
                                                   if blocks else 1)
        # A block-format GEMM. A register here, not the decoder's fmt decoded (timing: that route
        # crosses the chip); fmt is set by gemm_start's cycle, wmode a cycle later, and it is not
        # used before the GEMM's first weights are in.
        wmode = Signal()
        if blocks:
            m.d.sync += wmode.eq(self.control.fmt != Format.INT8)
        connect(m, flipped(self.act), act_buf.act)
        # Weight rows enter through a skid buffer (`Config.weight_skid`; timing: on the
        # ULX3S-85F the banks' ready register was reached from the decoder's state through the
        # idle abort's made-up words, the weight stream's valid and the banks' next state; now
        # both sides of it start at a register). No stale row can wait in it across GEMMs: a
        # GEMM's reply, which holds off the next header, comes after its last weight row is used.
        if cfg.weight_skid:
            m.submodules.wgt_stage = wgt_stage = SkidBuffer(self.wgt.payload.shape())
            connect(m, flipped(self.wgt), wgt_stage.i)
            connect(m, wgt_stage.o, banks.wgt)
        else:
            connect(m, flipped(self.wgt), banks.wgt)
        m.d.comb += [
            act_buf.load_start.eq(self.control.load_start),
            banks.gemm_start.eq(self.control.gemm_start),
            banks.k_last.eq(self.control.k_last),
            banks.wmode.eq(wmode),
        ]
        if blocks:
            connect(m, flipped(self.act_scale), act_buf.act_scale)
            connect(m, flipped(self.blocks), banks.blocks)
            m.d.comb += [act_buf.act_blocks.eq(self.control.act_blocks),
                         self.bad_scale.eq(banks.bad_scale)]
        m.submodules.sequencer = seq = Sequencer(cfg, act_buf.latency)
        m.submodules.drain = drain = Drain(cfg)
        m.d.comb += [
            seq.start.eq(self.control.gemm_start), seq.n.eq(self.control.n), seq.k.eq(self.control.k),
            seq.k_last.eq(self.control.k_last), seq.m.eq(self.control.m), seq.wmode.eq(wmode),
            seq.bank_full.eq(banks.full), banks.release.eq(seq.release),
            act_buf.r_addr.eq(seq.act_addr), banks.r_bank.eq(seq.r_bank), banks.r_k.eq(seq.r_k),
        ]
        # One more register stage, the array's inputs, between the buffers and the multipliers
        # (timing: a block RAM's clock-to-out plus a multiplier is the longest path otherwise).
        m.d.sync += [
            array.act.eq(act_buf.r_data),
            array.wgt.eq(banks.r_data),
            array.ctrl.eq(seq.step),
        ]
        connect(m, seq.tiles, drain.tiles)
        connect(m, drain.results, flipped(self.results))
        m.d.comb += [drain.start.eq(self.control.gemm_start), seq.drained.eq(drain.drained),
                     self.busy.eq(drain.busy)]
        if blocks:
            # The scale stage's output registers replace the array's in a block GEMM.
            m.submodules.scale_stage = stage = ScaleStage(cfg)
            connect(m, seq.blocks, stage.blocks)
            m.d.comb += [
                banks.scale_addr.eq(stage.w_scale_addr), stage.w_scales.eq(banks.scale_data),
                act_buf.block_addr.eq(stage.a_block_addr), stage.a_blocks.eq(act_buf.block_data),
                stage.wmode.eq(wmode), stage.fmt.eq(self.control.fmt),
                stage.row0_done.eq(array.row0_done), stage.partials.eq(array.row),
                array.row_sel.eq(stage.row_sel),
                stage.drain_row.eq(drain.row), stage.drain_next.eq(drain.row_next),
                stage.drain_bank.eq(drain.bank), stage.tile_done.eq(drain.tile_done),
                drain.tile_done.eq(Mux(wmode, stage.final, array.done)),
            ]
            m.d.comb += drain.row_data.eq(self._results(m, wmode, stage.out, array.row))
        else:
            m.d.comb += [array.row_sel.eq(drain.row), drain.tile_done.eq(array.done),
                         drain.row_data.eq(array.row)]
        return m

    def _results(self, m, wmode, scaled, sums):
        """The drain's row: the scale stage's binary32 results (``scaled``) in a block GEMM,
        the array's sums otherwise, chosen by the block-mode flag; with
        `Config.readout_copies`, by copies of it, each for its own columns."""
        cfg = self._config
        copies = cfg.readout_copies
        if copies == 1:
            return Mux(wmode, scaled.as_value(), sums.as_value())
        flags = [Signal(name=f"wmode_{i}", attrs={KEEP_COPY: 1}) for i in range(copies)]
        m.d.sync += [flag.eq(self.control.fmt != Format.INT8) for flag in flags]
        scaled, sums = scaled.as_value(), sums.as_value()
        return Cat(Mux(flags[c * copies // cfg.cols], scaled.word_select(c, cfg.acc_width),
                       sums.word_select(c, cfg.acc_width)) for c in range(cfg.cols))
