"""Activation buffer: the last LOAD_A's activations on chip, with their 32-blocks' scales."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .buffer_memory import BufferMemory
from .scale_items import ACT_SUM_WIDTH

__all__ = ["ActBlock", "ActivationBuffer"]


class ActBlock(data.Struct):
    """One activation row's 32-block: its binary16 scale and the sum of its int8 values."""

    dx: 16
    sum: data.signed(ACT_SUM_WIDTH)


class ActivationBuffer(wiring.Component):
    """``act_depth`` activation vectors, written in order from a LOAD_A's start, read by address.

    Every vector is taken the cycle it arrives (``act.ready`` is constant 1). With block
    formats, LOAD_A in 32-blocks sends a block's scale vector before its 32 vectors; the buffer
    keeps, per block and row, the binary16 scale and the sum of the block's 32 int8 values
    (Q4_1's offset term), one `ActBlock` row an entry.

    Ports
    -----
    act : stream in of activation vectors (``rows`` int8).
    load_start : in; a LOAD_A starts: the next vector is written at address 0.
    r_addr : in; the vector read, shown on ``r_data`` `latency` cycles later.
    r_data : out; ``rows`` int8.
    act_scale : (block formats) stream in of scale vectors (``rows`` binary16).
    act_blocks : (block formats) in; this LOAD_A is in 32-blocks (its block entries are kept).
    block_addr : (block formats) in; the 32-block read, shown on ``block_data`` a cycle later.
    block_data : (block formats) out; ``rows`` `ActBlock`.

    Attributes
    ----------
    latency : int
        Cycles from ``r_addr`` to ``r_data`` (`BufferMemory.latency`).
    """

    def __init__(self, config):
        self._config = config
        cfg = config
        vector = data.ArrayLayout(data.signed(8), cfg.rows)
        self._mem = BufferMemory(vector, cfg.act_depth, piece_depth=cfg.buffer_piece_depth)
        self.latency = self._mem.latency
        super().__init__({
            "act": In(stream.Signature(vector)),
            "load_start": In(1),
            "r_addr": In(range(cfg.act_depth)),
            "r_data": Out(vector),
            **({
                "act_scale": In(stream.Signature(data.ArrayLayout(16, cfg.rows))),
                "act_blocks": In(1),
                "block_addr": In(range(cfg.act_depth // 32)),
                "block_data": Out(data.ArrayLayout(ActBlock, cfg.rows)),
            } if cfg.block_formats else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.mem = mem = self._mem
        ptr = Signal(range(cfg.act_depth))
        m.d.comb += [
            self.act.ready.eq(1),
            mem.w_addr.eq(ptr),
            mem.w_data.eq(self.act.payload),
            mem.w_en.eq(self.act.valid),
            mem.r_addr.eq(self.r_addr),
            self.r_data.eq(mem.r_data),
        ]
        with m.If(self.load_start):
            m.d.sync += ptr.eq(0)
        with m.Elif(self.act.valid):
            m.d.sync += ptr.eq(ptr + 1)
        if cfg.block_formats:
            self._blocks(m, ptr)
        return m

    def _blocks(self, m, ptr):
        """Each block's scales (the scale vector just before its 32 vectors) and sums Σx."""
        rows = self._config.rows
        m.submodules.block_mem = block_mem = Memory(
            shape=data.ArrayLayout(ActBlock, rows), depth=self._config.act_depth // 32, init=[])
        wr = block_mem.write_port()
        rd = block_mem.read_port()
        cur_dx = Signal(data.ArrayLayout(16, rows))
        sums = Signal(data.ArrayLayout(data.signed(ACT_SUM_WIDTH), rows))
        new_sums = Signal.like(sums)
        block_start = ptr[:5] == 0
        m.d.comb += self.act_scale.ready.eq(1)
        with m.If(self.act_scale.valid):
            m.d.sync += cur_dx.eq(self.act_scale.payload)
        for r in range(rows):
            m.d.comb += [
                new_sums[r].eq(Mux(block_start, 0, sums[r]) + self.act.payload[r]),
                wr.data[r].dx.eq(cur_dx[r]),
                wr.data[r].sum.eq(new_sums[r]),
            ]
        with m.If(self.act.valid):
            m.d.sync += sums.eq(new_sums)
        m.d.comb += [
            wr.addr.eq(ptr >> 5),
            wr.en.eq(self.act.valid & self.act_blocks & (ptr[:5] == 31)),
            rd.addr.eq(self.block_addr),
            self.block_data.eq(rd.data),
        ]
