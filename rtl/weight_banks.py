"""Weight banks: two weight tiles, one being written from the link while the other is read."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .block_fields import block_layout
from .block_ram import BlockRam
from .buffer_memory import BufferMemory
from .delay import delay
from .mux_tree import byte_select

__all__ = ["RELEASE_DELAY", "WeightBanks", "WeightScales"]

# Cycles from a bank's last step issued to the loader getting it back, beyond the banks' read
# latency (`BufferMemory.latency`).
RELEASE_DELAY = 7


class WeightScales(data.Struct):
    """One weight block's binary16 scale and (Q4_1) offset."""

    dw: 16
    mw: 16


class WeightBanks(wiring.Component):
    """Double-buffered weight tiles of K rows of ``cols`` weights.

    The loader fills bank 0, then bank 1, then 0 again, each with one tile: K int8 weight rows
    from ``wgt``, or in a block format K / 32 groups of unpacked blocks from ``blocks`` (each
    block's 32 weights go to its column's lane of the lane memory in pieces of
    `Config.lane_weights`, one a cycle, its scales to the column's scale entry). A full bank is
    flagged in ``full`` until the sequencer hands it back with ``release`` (the cycle its last
    step is issued); the loader gets it back some cycles later, once the step's last reads
    (and in a block GEMM its scales, taken when the step has reached row 0) are done. The
    loader's ready is a register, computed from the banks' next state (timing: it is on the
    decoder's handshake path).

    Ports
    -----
    wgt : stream in of weight rows (``cols`` int8), an int8 GEMM's tiles in order.
    gemm_start : in; a GEMM starts: both banks empty, the next tile goes to bank 0.
    k_last : in; K - 1 of the GEMM.
    wmode : in; the GEMM is in a block format (registered; set before its first weights).
    full : out; per bank: it holds a whole tile not yet released.
    release : in; per bank: its last step has been issued.
    r_bank, r_k : in; the weight row read: ``r_data`` shows it `latency` cycles later.
    r_data : out; ``cols`` int8 (in a block GEMM the lane memory's weights, otherwise the bank's).
    blocks : (block formats) stream in of unpacked blocks (`block_fields.block_layout`).
    scale_addr : (block formats) in; bank × K / 32 + block: its scales on ``scale_data`` a cycle
        later.
    scale_data : (block formats) out; ``cols`` `WeightScales`.
    bad_scale : (block formats) out; a block of this GEMM had an inf/NaN scale.

    Attributes
    ----------
    latency : int
        Cycles from ``r_bank``/``r_k`` to ``r_data``: a registered address, then the memory.
    """

    def __init__(self, config):
        self._config = config
        cfg = config
        row = data.ArrayLayout(data.signed(8), cfg.cols)
        self._mem = BufferMemory(row, 2 * cfg.max_k, piece_depth=cfg.buffer_piece_depth)
        self.latency = 1 + self._mem.latency
        super().__init__({
            "wgt": In(stream.Signature(row)),
            "gemm_start": In(1),
            "k_last": In(range(cfg.max_k)),
            "wmode": In(1),
            "full": Out(2),
            "release": In(2),
            "r_bank": In(1),
            "r_k": In(range(cfg.max_k)),
            "r_data": Out(row),
            **({
                "blocks": In(stream.Signature(block_layout(cfg.cols))),
                "scale_addr": In(range(2 * (cfg.max_k // 32))),
                "scale_data": Out(data.ArrayLayout(WeightScales, cfg.cols)),
                "bad_scale": Out(1),
            } if cfg.block_formats else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        max_k = cfg.max_k
        m.submodules.mem = mem = self._mem
        load_bank = Signal()
        full_next = Signal(2)
        load_bank_next = Signal()
        load_ready = Signal()
        load_k = Signal(range(max_k))
        set_full = Signal(2)
        m.d.comb += [
            self.wgt.ready.eq(load_ready),
            mem.w_addr.eq(Mux(load_bank, max_k, 0) + load_k),
            mem.w_data.eq(self.wgt.payload),
            mem.w_en.eq(self.wgt.valid & self.wgt.ready),
        ]
        released = self._released(m)
        m.d.comb += [full_next.eq((self.full | set_full) & ~released),
                     load_bank_next.eq(load_bank)]
        m.d.sync += [self.full.eq(full_next), load_bank.eq(load_bank_next),
                     load_ready.eq(~full_next.bit_select(load_bank_next, 1))]
        with m.If(self.gemm_start):
            m.d.comb += [load_bank_next.eq(0), full_next.eq(0)]
            m.d.sync += load_k.eq(0)
        with m.Elif(self.wgt.valid & self.wgt.ready):
            with m.If(load_k == self.k_last):
                m.d.comb += [set_full.bit_select(load_bank, 1).eq(1),
                             load_bank_next.eq(~load_bank)]
                m.d.sync += load_k.eq(0)
            with m.Else():
                m.d.sync += load_k.eq(load_k + 1)

        # Reads: the address registered (timing: no adder in front of the block RAMs).
        addr = Signal.like(mem.r_addr)
        m.d.sync += addr.eq(Mux(self.r_bank, max_k, 0) + self.r_k)
        m.d.comb += [mem.r_addr.eq(addr), self.r_data.eq(mem.r_data)]
        if cfg.block_formats:
            self._lanes(m, load_bank, load_ready, set_full, load_bank_next)
        return m

    def _released(self, m):
        """``release`` delayed until the bank's last reads are done."""
        cfg = self._config
        hold = RELEASE_DELAY + self._mem.latency
        released = self.release
        for i in range(hold + (cfg.cols - 1 if cfg.block_formats else 0)):
            stage = Signal(2, name=f"release_{i + 1}")
            m.d.sync += stage.eq(released)
            released = stage
            if i + 1 == hold:
                int8_released = stage
        return Mux(self.wmode, released, int8_released) if cfg.block_formats else released

    def _lanes(self, m, load_bank, load_ready, set_full, load_bank_next):
        """Block formats: the lane memory and the blocks' scales. With 8 weights a word, the 8x16
        ECP5 builds' lane memory is two DP16KDs a column (512 x 72 bits: 2 banks x 2048 k) read
        64 bits wide into an 8:1 select, not four (256 x 144, half of each left empty) read 128
        bits into 16:1."""
        cfg = self._config
        cols, max_k = cfg.cols, cfg.max_k
        nkb = max_k // 32
        lw = cfg.lane_weights
        lane_bits = lw.bit_length() - 1
        # Addressed by Cat(k // lw, bank) (no adder in front of its read port, which is not
        # registered), so a bank is a power of two of lane words deep.
        lane_bank = 1 << ((max_k - 1) >> lane_bits).bit_length()
        m.submodules.lane_mem = lane_mem = BlockRam(
            data.ArrayLayout(data.ArrayLayout(data.signed(8), lw), cols), 2 * lane_bank,
            registered=self._mem.latency == 2, granularity=8 * lw)
        m.submodules.scale_mem = scale_mem = Memory(
            shape=data.ArrayLayout(WeightScales, cols), depth=2 * nkb, init=[])
        scale_wr = scale_mem.write_port(granularity=1)
        scale_rd = scale_mem.read_port()
        m.d.comb += [scale_rd.addr.eq(self.scale_addr), self.scale_data.eq(scale_rd.data)]
        blk = self.blocks.payload
        piece = Signal(range(32 // lw))
        last_piece = piece == 32 // lw - 1
        load_b = Signal(range(nkb))
        writing = Signal()
        lane_bit = Signal(cols)
        m.d.comb += [
            writing.eq(self.blocks.valid & load_ready),
            self.blocks.ready.eq(writing & last_piece),
            lane_bit.eq(1 << blk.lane),
            lane_mem.w_addr.eq(Cat(piece, load_b, load_bank)),
            lane_mem.w_en.eq(Mux(writing, lane_bit, 0)),
            scale_wr.addr.eq(Mux(load_bank, nkb, 0) + load_b),
            scale_wr.en.eq(Mux(writing & (piece == 0), lane_bit, 0)),
        ]
        q_bits = blk.q.as_value()
        for c in range(cols):
            m.d.comb += [
                lane_mem.w_data[c].eq(q_bits.word_select(piece, 8 * lw)),
                scale_wr.data[c].dw.eq(blk.d),
                scale_wr.data[c].mw.eq(blk.m),
            ]
        with m.If(writing):
            m.d.sync += piece.eq(Mux(last_piece, 0, piece + 1))
        with m.If(self.gemm_start):
            m.d.sync += [load_b.eq(0), piece.eq(0), self.bad_scale.eq(0)]
        with m.Elif(self.blocks.valid & self.blocks.ready):
            with m.If(blk.bad_scale):
                m.d.sync += self.bad_scale.eq(1)
            with m.If(blk.group_last):
                with m.If(load_b == (self.k_last >> 5)):
                    m.d.comb += [set_full.bit_select(load_bank, 1).eq(1),
                                 load_bank_next.eq(~load_bank)]
                    m.d.sync += load_b.eq(0)
                with m.Else():
                    m.d.sync += load_b.eq(load_b + 1)

        # Reads: element k mod lane_weights of each column's lane, selected from the lane
        # memory's read data into a register. The lane memory has the banks' read latency and
        # its address is not registered, so the selected weights meet the int8 path's. (With
        # two cycles of latency its read data is registered, on ECP5 by the block RAMs' own
        # output registers, so the 8:1 select starts from a register, not a clock-to-out.)
        m.d.comb += lane_mem.r_addr.eq(Cat(self.r_k[lane_bits:], self.r_bank))
        elem = delay(m, self.r_k[:lane_bits], self._mem.latency, "elem")
        lane_wgt = Signal.like(self.r_data)
        for c in range(cols):
            m.d.sync += lane_wgt[c].eq(byte_select(lane_mem.r_data[c].as_value(), elem))
        with m.If(self.wmode):
            m.d.comb += self.r_data.eq(lane_wgt)
