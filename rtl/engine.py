"""GEMM engine: activation buffer, double-buffered weight tiles, sequencer, array, drain."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from systolica.protocol import Format

from .array import SystolicArray
from .block_ram import BlockRam
from .block_unpacker import block_layout
from .buffer_memory import BufferMemory
from .delay import delay
from .mux_tree import byte_select
from .pe import StepControl
from .scale_unit import ACT_SUM_WIDTH, ScaleUnit

__all__ = ["ActBlock", "GemmEngine", "ResultRow", "WeightScales"]

# Cycles from a bank's last step issued to the loader getting it back, beyond the buffers' read
# latency (`BufferMemory.latency`).
RELEASE_DELAY = 7
PARTIAL_WIDTH = 21   # a 32-block's Σ x·q: |x|, |q| <= 128, so |Σ| <= 2**19


class ActBlock(data.Struct):
    """One activation row's 32-block: its binary16 scale and the sum of its int8 values."""

    dx: 16
    sum: data.signed(ACT_SUM_WIDTH)


class WeightScales(data.Struct):
    """One weight block's binary16 scale and (Q4_1) offset."""

    dw: 16
    mw: 16


def ResultRow(config):  # noqa: N802 (a layout factory reads like a type)
    """Layout of one result beat: a row of ``cols`` int32 sums and where it belongs."""
    return data.StructLayout({
        "data": data.ArrayLayout(data.signed(config.acc_width), config.cols),
        "row_tile": 16,
        "col_tile": 16,
        "rows": range(config.rows + 1),
        "cols": range(config.cols + 1),
        "first": 1,   # first row of a tile
        "last": 1,    # last row of a tile
        "end": 1,     # last row of the GEMM
    })


class GemmEngine(wiring.Component):
    """Computes C = A·W with A held on chip and W streamed through once.

    A LOAD_A fills the activation buffer with ``ceil(N / rows) × K`` vectors (one word of ``rows``
    int8 per row tile and k). A GEMM then streams W as ``ceil(M / cols)`` weight tiles of K rows. Each weight
    tile is written into one of two banks while the other bank is being used: every buffered
    row tile runs K steps against it, so a weight crosses the link once and is used against every
    buffered activation row. Partial tiles need no padding from the host: vectors shorter than the
    array are zero-filled by the decoder and the unused rows/columns are not sent back.

    Results leave as rows of ``cols`` int32 (`ResultRow`), j-major, i-minor.
    """

    def __init__(self, config):
        self._config = config
        cfg = config
        super().__init__({
            "act": In(stream.Signature(data.ArrayLayout(data.signed(8), cfg.rows))),
            "wgt": In(stream.Signature(data.ArrayLayout(data.signed(8), cfg.cols))),
            "load_start": In(1),
            "gemm_start": In(1),
            "n": In(16),
            "k": In(range(cfg.max_k + 1)),
            "k_last": In(range(cfg.max_k)),
            "m": In(16),
            "results": Out(stream.Signature(ResultRow(cfg))),
            "busy": Out(1),
            **({
                "act_scale": In(stream.Signature(data.ArrayLayout(16, cfg.rows))),
                "act_blocks": In(1),
                "fmt": In(2),
                "blocks": In(stream.Signature(block_layout(cfg.cols))),
                "bad_scale": Out(1),
            } if cfg.block_formats else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        rows, cols, max_k = cfg.rows, cfg.cols, cfg.max_k

        m.submodules.act_mem = act_mem = BufferMemory(
            data.ArrayLayout(data.signed(8), rows), cfg.act_depth,
            piece_depth=cfg.buffer_piece_depth)
        m.submodules.wgt_mem = wgt_mem = BufferMemory(
            data.ArrayLayout(data.signed(8), cols), 2 * max_k, piece_depth=cfg.buffer_piece_depth)
        blocks = bool(cfg.block_formats)
        m.submodules.array = array = SystolicArray(rows, cols, acc_width=cfg.acc_bits,
                                                   multiplier=cfg.multiplier,
                                                   out_width=cfg.acc_width)
        # A block-format GEMM. A register here, not the decoder's fmt decoded (timing: that route
        # crosses the chip); fmt is set by gemm_start's cycle, wmode a cycle later, and it is not
        # used before the GEMM's first weights are in.
        wmode = Signal()
        if blocks:
            m.d.sync += wmode.eq(self.fmt != Format.INT8)

        # Activation buffer: written in order from the last LOAD_A's start.
        act_ptr = Signal(range(cfg.act_depth))
        m.d.comb += [
            self.act.ready.eq(1),
            act_mem.w_addr.eq(act_ptr),
            act_mem.w_data.eq(self.act.payload),
            act_mem.w_en.eq(self.act.valid),
        ]
        with m.If(self.load_start):
            m.d.sync += act_ptr.eq(0)
        with m.Elif(self.act.valid):
            m.d.sync += act_ptr.eq(act_ptr + 1)

        if blocks:
            # Activations in 32-blocks: each block's binary16 scales (a scale vector just before
            # its 32 vectors) and the block sums Σx (Q4_1's m term), one entry a block.
            m.submodules.act_scale_mem = act_scale_mem = Memory(
                shape=data.ArrayLayout(ActBlock, rows), depth=cfg.act_depth // 32, init=[])
            act_scale_wr = act_scale_mem.write_port()
            act_scale_rd = act_scale_mem.read_port()
            cur_dx = Signal(data.ArrayLayout(16, rows))
            sums = Signal(data.ArrayLayout(data.signed(ACT_SUM_WIDTH), rows))
            new_sums = Signal.like(sums)
            block_start = act_ptr[:5] == 0
            m.d.comb += self.act_scale.ready.eq(1)
            with m.If(self.act_scale.valid):
                m.d.sync += cur_dx.eq(self.act_scale.payload)
            for r in range(rows):
                m.d.comb += [
                    new_sums[r].eq(Mux(block_start, 0, sums[r]) + self.act.payload[r]),
                    act_scale_wr.data[r].dx.eq(cur_dx[r]),
                    act_scale_wr.data[r].sum.eq(new_sums[r]),
                ]
            with m.If(self.act.valid):
                m.d.sync += sums.eq(new_sums)
            m.d.comb += [
                act_scale_wr.addr.eq(act_ptr >> 5),
                act_scale_wr.en.eq(self.act.valid & self.act_blocks & (act_ptr[:5] == 31)),
            ]

        # Weight loader: fills bank `load_bank` with one weight tile, then the other.
        # The loader's ready is a register (timing: it is on the decoder's handshake path),
        # computed from the next values of bank_full and load_bank.
        bank_full = Signal(2)
        load_bank = Signal()
        bank_full_next = Signal(2)
        load_bank_next = Signal()
        load_ready = Signal()
        load_k = Signal(range(max_k))
        m.d.comb += [
            self.wgt.ready.eq(load_ready),
            wgt_mem.w_addr.eq(Mux(load_bank, max_k, 0) + load_k),
            wgt_mem.w_data.eq(self.wgt.payload),
            wgt_mem.w_en.eq(self.wgt.valid & self.wgt.ready),
        ]
        set_full = Signal(2)
        # A bank is handed back to the loader some cycles after its last step is issued: its
        # last reads (the registered addresses, and in a block-format GEMM the block's weight
        # scales, taken when the step has reached row 0 of the array) happen after the issue.
        release = Signal(2)
        released = release
        hold = RELEASE_DELAY + act_mem.latency
        for i in range(hold + (cfg.cols - 1 if blocks else 0)):
            stage = Signal(2, name=f"release_{i + 1}")
            m.d.sync += stage.eq(released)
            released = stage
            if i + 1 == hold:
                int8_released = stage
        if blocks:
            released = Mux(wmode, released, int8_released)
        m.d.comb += [bank_full_next.eq((bank_full | set_full) & ~released),
                     load_bank_next.eq(load_bank)]
        m.d.sync += [bank_full.eq(bank_full_next), load_bank.eq(load_bank_next),
                     load_ready.eq(~bank_full_next.bit_select(load_bank_next, 1))]
        with m.If(self.gemm_start):
            m.d.comb += [load_bank_next.eq(0), bank_full_next.eq(0)]
            m.d.sync += load_k.eq(0)
        with m.Elif(self.wgt.valid & self.wgt.ready):
            with m.If(load_k == self.k_last):
                m.d.comb += set_full.bit_select(load_bank, 1).eq(1)
                m.d.comb += load_bank_next.eq(~load_bank)
                m.d.sync += load_k.eq(0)
            with m.Else():
                m.d.sync += load_k.eq(load_k + 1)

        if blocks:
            # Block formats: each unpacked block (32 weights of one channel) goes to its lane of
            # the lane memory in pieces of `Config.lane_weights` weights, one a cycle; its scales
            # to the lane's scale entry. With 8 weights a word, the 8x16 ECP5 builds' lane memory
            # is two DP16KDs a column (512 x 72 bits: 2 banks x 2048 k) read 64 bits wide into an
            # 8:1 select, not four (256 x 144, half of each left empty) read 128 bits into 16:1.
            nkb = max_k // 32
            lw = cfg.lane_weights
            lane_bits = lw.bit_length() - 1
            # Addressed by Cat(k // lw, bank) (no adder in front of its read port, which is not
            # registered: see the sequencer), so a bank is a power of two of lane words deep.
            lane_bank = 1 << ((max_k - 1) >> lane_bits).bit_length()
            m.submodules.lane_mem = lane_mem = BlockRam(
                data.ArrayLayout(data.ArrayLayout(data.signed(8), lw), cols), 2 * lane_bank,
                registered=act_mem.latency == 2, granularity=8 * lw)
            m.submodules.wscale_mem = wscale_mem = Memory(
                shape=data.ArrayLayout(WeightScales, cols), depth=2 * nkb, init=[])
            wscale_wr = wscale_mem.write_port(granularity=1)
            wscale_rd = wscale_mem.read_port()
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
                wscale_wr.addr.eq(Mux(load_bank, nkb, 0) + load_b),
                wscale_wr.en.eq(Mux(writing & (piece == 0), lane_bit, 0)),
            ]
            q_bits = blk.q.as_value()
            for c in range(cols):
                m.d.comb += [
                    lane_mem.w_data[c].eq(q_bits.word_select(piece, 8 * lw)),
                    wscale_wr.data[c].dw.eq(blk.d),
                    wscale_wr.data[c].mw.eq(blk.m),
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
                        m.d.comb += set_full.bit_select(load_bank, 1).eq(1)
                        m.d.comb += load_bank_next.eq(~load_bank)
                        m.d.sync += load_b.eq(0)
                    with m.Else():
                        m.d.sync += load_b.eq(load_b + 1)

        # Sequencer: for each weight tile j, for each row tile i, K steps into the array.
        running = Signal()
        seq_bank = Signal()
        seq_k = Signal(range(max_k))
        seq_i = Signal(16)
        seq_j = Signal(16)
        act_base = Signal(range(cfg.act_depth + max_k))
        n_left = Signal(17)
        m_left = Signal(17)
        # Tiles whose last step has been issued but whose results are not drained yet: the
        # array's result registers hold one; the block formats' scale stage two (its output
        # registers are double-buffered: its results come some 40 cycles after the array's).
        pending = Signal(range(3))
        pending_full = Signal()

        # "Last" flags are registers, updated with the counters they describe (timing).
        k_left = Signal(range(max_k))
        last_step = Signal()
        last_i = Signal()
        last_j = Signal()
        single_step = Signal()    # K = 1
        issue = Signal()
        # Block formats: every 32-block of K is a tile of its own for the PEs.
        block_end = seq_k[:5] == 31
        # When one scale unit serves more dot products a block than there are cycles in it
        # (rows × scale_share > 32), the ends of two blocks are kept `Config.block_period`
        # cycles apart: ``blocked`` holds the next block's last step back until then.
        blocked = Signal()
        if blocks and cfg.block_period > 32:
            gap = Signal(range(cfg.block_period))
            with m.If(issue & wmode & block_end):
                m.d.sync += [gap.eq(cfg.block_period - 2), blocked.eq(1)]
            with m.Elif(gap != 0):
                m.d.sync += gap.eq(gap - 1)
            with m.Else():
                m.d.sync += blocked.eq(0)
        m.d.comb += [
            pending_full.eq(pending >= (Mux(wmode, 2, 1) if blocks else 1)),
            issue.eq(running & bank_full.bit_select(seq_bank, 1) & ~(last_step & pending_full) &
                     ~(blocked & wmode & block_end)),
        ]
        # The read addresses are registered (timing: no adder in front of the block RAMs); the
        # step's control follows them a cycle later, aligned with the memories' read data.
        act_addr = Signal.like(act_mem.r_addr)
        wgt_addr = Signal.like(wgt_mem.r_addr)
        m.d.sync += [act_addr.eq(act_base + seq_k), wgt_addr.eq(Mux(seq_bank, max_k, 0) + seq_k)]
        m.d.comb += [act_mem.r_addr.eq(act_addr), wgt_mem.r_addr.eq(wgt_addr)]

        # The step's control, delayed to the buffers' read data (`BufferMemory.latency` cycles
        # after the registered addresses).
        issued = Signal(StepControl)
        m.d.sync += [
            issued.valid.eq(issue),
            issued.last.eq(Mux(wmode, block_end, last_step)),
        ]
        read_latency = act_mem.latency
        step = delay(m, issued, read_latency, "step")
        read_wgt = Signal.like(wgt_mem.r_data)
        m.d.comb += read_wgt.eq(wgt_mem.r_data)
        if blocks:
            # Block formats: element k mod lane_weights of each column's lane, selected from the
            # lane memory's read data into a register. The lane memory has the buffers' read latency
            # and its address is not registered, so the selected weights meet the activations
            # read through the registered address. (With two cycles of latency its read data is
            # registered, on ECP5 by the block RAMs' own output registers, so the 8:1 select
            # starts from a register, not from a block RAM's clock-to-out.)
            m.d.comb += lane_mem.r_addr.eq(Cat(seq_k[lane_bits:], seq_bank))
            elem = delay(m, seq_k[:lane_bits], read_latency, "elem")
            lane_wgt = Signal.like(read_wgt)
            for c in range(cols):
                m.d.sync += lane_wgt[c].eq(byte_select(lane_mem.r_data[c].as_value(), elem))
            with m.If(wmode):
                m.d.comb += read_wgt.eq(lane_wgt)
        # One more register stage, the array's inputs, between the buffers and the multipliers
        # (timing: a block RAM's clock-to-out plus a multiplier is the longest path otherwise).
        m.d.sync += [
            array.act.eq(act_mem.r_data),
            array.wgt.eq(read_wgt),
            array.ctrl.eq(step),
        ]

        # Where the tiles in the result registers belong: written at their last step, read
        # while they drain.
        metas = Signal(data.ArrayLayout(ResultRow(cfg), 2))
        meta_wr = Signal()
        meta_rd = Signal()
        meta = metas[meta_rd]
        new_meta = metas[meta_wr]
        with m.If(self.gemm_start):
            m.d.sync += [
                running.eq(1), seq_bank.eq(0), seq_k.eq(0), seq_i.eq(0), seq_j.eq(0),
                act_base.eq(0), n_left.eq(self.n), m_left.eq(self.m), self.busy.eq(1),
                k_left.eq(self.k_last), single_step.eq(self.k_last == 0),
                last_step.eq(self.k_last == 0),
                last_i.eq(self.n <= rows), last_j.eq(self.m <= cols),
            ]
        with m.Elif(issue):
            with m.If(last_step):
                m.d.sync += [
                    seq_k.eq(0), k_left.eq(self.k_last), last_step.eq(single_step),
                    meta_wr.eq(~meta_wr),
                    new_meta.row_tile.eq(seq_i),
                    new_meta.col_tile.eq(seq_j),
                    new_meta.rows.eq(Mux(n_left > rows, rows, n_left)),
                    new_meta.cols.eq(Mux(m_left > cols, cols, m_left)),
                    new_meta.end.eq(last_i & last_j),
                ]
                with m.If(last_i):
                    m.d.comb += release.bit_select(seq_bank, 1).eq(1)
                    m.d.sync += [
                        seq_i.eq(0), act_base.eq(0), n_left.eq(self.n),
                        last_i.eq(self.n <= rows),
                        seq_j.eq(seq_j + 1), m_left.eq(m_left - cols), seq_bank.eq(~seq_bank),
                        last_j.eq(m_left <= 2 * cols),
                    ]
                    with m.If(last_j):
                        m.d.sync += running.eq(0)
                with m.Else():
                    m.d.sync += [
                        seq_i.eq(seq_i + 1), act_base.eq(act_base + self.k),
                        n_left.eq(n_left - rows), last_i.eq(n_left <= 2 * rows),
                    ]
            with m.Else():
                m.d.sync += [seq_k.eq(seq_k + 1), k_left.eq(k_left - 1),
                             last_step.eq(k_left == 1)]

        # Drain: once the last step reached every PE, send the tile's valid rows.
        draining = Signal()
        drain_row = Signal(range(rows))
        row_is_last = drain_row == meta.rows - 1
        tile_done = Signal()
        row_data = Signal.like(array.row)
        out_wr = Signal()       # the scale stage's output bank the next finished tile goes to
        m.d.comb += [tile_done.eq(array.done), row_data.eq(array.row)]
        with m.If(tile_done):
            m.d.sync += out_wr.eq(~out_wr)
        sel = Signal(range(rows))     # the block formats' read-out row (below)
        sweep = Signal()
        if blocks:
            self._scale_stage(m, array, issue, block_end, last_step, seq_bank, seq_k, act_base,
                              act_scale_rd, wscale_rd, wmode, drain_row, sel, sweep, tile_done,
                              row_data, out_wr, meta_rd)
        # Finished tiles waiting for the drain (at most two), and the pending count.
        ready = Signal(range(3))
        start = Signal()
        drained = Signal()
        m.d.comb += [
            start.eq(~draining & (ready != 0)),
            drained.eq(self.results.valid & self.results.ready & row_is_last),
        ]
        m.d.sync += [
            ready.eq(ready + tile_done - start),
            pending.eq(pending + (issue & last_step) - drained),
        ]
        m.d.comb += [
            self.results.valid.eq(draining),
            self.results.payload.eq(meta),
            self.results.payload.data.eq(row_data),
            self.results.payload.first.eq(drain_row == 0),
            self.results.payload.last.eq(row_is_last),
            self.results.payload.end.eq(meta.end & row_is_last),
        ]
        with m.If(start):
            m.d.sync += [draining.eq(1), drain_row.eq(0)]
        with m.If(self.results.valid & self.results.ready):
            with m.If(row_is_last):
                m.d.sync += [draining.eq(0), meta_rd.eq(~meta_rd)]
                with m.If(meta.end):
                    m.d.sync += self.busy.eq(0)
            with m.Else():
                m.d.sync += drain_row.eq(drain_row + 1)
        # The block's dot products leave the array through its row read-out: from PE (0, cols-1)'s
        # capture on, one row a cycle (`SystolicArray.row0_done`), all columns at once. The read-out
        # row is a register: the drain's row in an int8 GEMM (the same value as ``drain_row``,
        # every cycle), this sweep in a block-format one (row 0 between sweeps: an int8 GEMM
        # leaves its last drained row in it, which is not a sweep).
        if blocks:
            drain_next = Mux(start, 0, Mux(self.results.valid & self.results.ready & ~row_is_last,
                                           drain_row + 1, drain_row))
            sweeping = Signal()     # rows 1 .. rows-1 of a sweep
            m.d.comb += [array.row_sel.eq(sel), sweep.eq(array.row0_done | sweeping)]
            with m.If(~wmode):
                m.d.sync += [sel.eq(drain_next), sweeping.eq(0)]
            with m.Elif(sweep & (sel != rows - 1)):
                m.d.sync += [sel.eq(sel + 1), sweeping.eq(1)]
            with m.Else():
                m.d.sync += [sel.eq(0), sweeping.eq(0)]
        else:
            m.d.comb += array.row_sel.eq(drain_row)
        return m

    def _scale_stage(self, m, array, issue, block_end, last_step, seq_bank, seq_k, act_base,
                     act_scale_rd, wscale_rd, wmode, drain_row, sel, sweep, tile_done, row_data,
                     out_wr, out_rd):
        """Block formats: `ScaleUnit`s, each serving ``cfg.scale_share`` columns, turn each block's
        integer dot products into the binary32 sums; their output registers replace the array's
        for the drain."""
        cfg = self._config
        rows, cols, nkb = cfg.rows, cfg.cols, cfg.max_k // 32
        # Where the block whose last step is issued now finds its scales; taken when that step
        # has reached row 0 of the array (``row0_done``, 7 + cols - 1 cycles after the issue).
        # Blocks are at least 32 cycles apart, more than that with cols <= 24 (`Config`), and the
        # scale memories read these (registered) addresses continuously.
        pend_w = Signal(range(2 * nkb))
        pend_a = Signal(range(cfg.act_depth // 32))
        pend_first = Signal()
        pend_last = Signal()
        with m.If(issue & wmode & block_end):
            m.d.sync += [
                pend_w.eq(Mux(seq_bank, nkb, 0) + (seq_k >> 5)),
                pend_a.eq((act_base + seq_k) >> 5),
                pend_first.eq((seq_k >> 5) == 0),
                pend_last.eq(last_step),
            ]
        m.d.comb += [wscale_rd.addr.eq(pend_w), act_scale_rd.addr.eq(pend_a)]
        # The block's scales, taken when its first dot products leave the array (row 0's),
        # into one of two scale sets, the other one each block (`ScaleUnit`): the units read a
        # block's set until its R×C dot products have all entered their datapaths, which may
        # be after the next block's first one (with one unit for many columns).
        cur_w = Signal(data.ArrayLayout(wscale_rd.data.shape(), 2))
        cur_a = Signal(data.ArrayLayout(act_scale_rd.data.shape(), 2))
        cur_first = Signal(2)
        cur_last = Signal(2)
        block_set = Signal()
        with m.If(array.row0_done):
            m.d.sync += block_set.eq(~block_set)
            for s in range(2):
                with m.If(block_set != s):
                    m.d.sync += [cur_w[s].eq(wscale_rd.data), cur_a[s].eq(act_scale_rd.data),
                                 cur_first[s].eq(pend_first), cur_last[s].eq(pend_last)]
        offset = Format.Q4_1 in cfg.block_formats
        is_q4_1 = Signal()      # registered as wmode is (timing)
        m.d.sync += is_q4_1.eq(self.fmt == Format.Q4_1)
        share = cfg.scale_share
        units = []
        for first_col in range(0, cols, share):
            unit = ScaleUnit(rows, share, PARTIAL_WIDTH, offset_term=offset,
                             multiplier=cfg.scale_multiplier)
            m.submodules[f"scale_{first_col // share}"] = unit
            units.append(unit)
            m.d.comb += [
                unit.block.eq(block_set),
                unit.first.eq(cur_first),
                unit.last.eq(cur_last),
                unit.offset.eq(is_q4_1),
                unit.out_row.eq(drain_row),
                unit.out_wr.eq(out_wr),
                unit.out_rd.eq(out_rd),
            ]
            for g in range(share):
                c = first_col + g
                valid = Signal(name=f"item_valid_{c}")
                row = Signal(range(rows), name=f"item_row_{c}")
                partial = Signal(data.signed(PARTIAL_WIDTH), name=f"item_partial_{c}")
                m.d.sync += [
                    valid.eq(sweep & wmode),
                    row.eq(sel),
                    partial.eq(array.row[c]),
                ]
                m.d.comb += [
                    unit.valid[g].eq(valid),
                    unit.row[g].eq(row),
                    unit.partial[g].eq(partial),
                ]
                for s in range(2):
                    m.d.comb += [unit.dw[s][g].eq(cur_w[s][c].dw),
                                 unit.mw[s][g].eq(cur_w[s][c].mw)]
            for s in range(2):
                for r in range(rows):
                    m.d.comb += [unit.dx[s][r].eq(cur_a[s][r].dx),
                                 unit.act_sum[s][r].eq(cur_a[s][r].sum)]
        with m.If(wmode):
            # The last unit's last column, last row finishes a tile last.
            last = units[-1]
            m.d.comb += [
                tile_done.eq(last.final & (last.final_row == rows - 1) &
                             (last.final_col == share - 1)),
                row_data.eq(Cat(unit.out for unit in units)),
            ]
