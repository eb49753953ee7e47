"""The scale stage of a group of array columns: block partial sums × block scales, accumulated in
binary32."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from systolica.config import SCALE_MULTIPLIERS

from .delay import delay
from .fp32 import Fp16ToFp32, Fp32Add, Fp32Multiply, IntToFp32
from .scale_items import ACT_SUM_WIDTH, look_up, select_item

__all__ = ["MULTIPLIERS", "ScaleUnit"]

# How the unit's binary32 multipliers form their partial products: see `Config.scale_multiplier`.
MULTIPLIERS = SCALE_MULTIPLIERS


class ScaleUnit(wiring.Component):
    """Turns the integer block dot products of ``cols`` array columns into binary32 results.

    Each *item* is one PE's dot product ``partial`` = Σ x·q over one 32-block, for array row
    ``row[g]`` of column ``g`` of the group. The block's scales are not carried with the items:
    they are held in two *scale sets* (``block`` selects the one of the items offered this
    cycle), each with the binary16 scales of the columns' weight blocks (``dw[s][g]``,
    ``mw[s][g]``), of the rows' activation blocks (``dx[s][r]``) and the activation blocks'
    sums (``act_sum[s][r]``), and whether the block is a tile's first or last (``first[s]``,
    ``last[s]``). The arithmetic is the one `systolica.host.block_formats` writes down:

        t = f32(partial) ⊗ (f32(dw) ⊗ f32(dx));  acc = acc ⊕ t
        if offset: v = (f32(mw) ⊗ f32(dx)) ⊗ f32(act_sum);  acc = acc ⊕ v

    with ``acc`` (one per row and column) starting from +0 on a ``first`` block. On a ``last``
    block the sum goes to the output register of its row and column instead, and ``final``
    pulses with ``final_row`` and ``final_col``. The output registers are two banks: finished
    tiles go to bank ``out_wr``; ``out`` shows row ``out_row`` of bank ``out_rd`` (one value a
    column), so one tile can be read out while the next one finishes.

    Each column may offer one item per cycle (``valid[g]``). With one column the item goes
    straight into the datapath. With more, the columns share it: each column's items wait in a
    small FIFO, and the columns take turns, column 0 first, each sending ``rows`` items (one
    block's: every column offers exactly ``rows`` items a block, as the array does) before the
    next column's turn. The datapath takes one item a cycle, so a group keeps up when its ``rows
    × cols`` items of a block go before the next block's arrive (32 cycles when blocks come back
    to back; the engine spaces them further when ``rows × cols`` is more than that); the array
    delivers a column's ``rows`` items on consecutive cycles, column ``g`` one cycle after
    column ``g - 1``. The items of one row and column must be at least `min_spacing` cycles
    apart (the accumulator is read `acc_read` cycles after an item is offered and written back
    ``latency`` cycles after); blocks 32 cycles apart keep that.

    An item's scale set is read in the cycle after it leaves its column's queue (with one
    column: the cycle after it is offered), so a block's set is read until about ``rows ×
    cols`` cycles after its first item is offered; the engine alternates the two sets block by
    block, so it rewrites a set only when the block after next begins.
    Carrying only row, dot product and set through the queues (25 bits, not 87) and looking the
    scales up once per item keeps one unit for 16 columns small (in the 8×16 ECP5 netlist: 36k
    routing sinks, 54k when the queues carried the scales).

    Parameters
    ----------
    rows : int
        Array rows.
    cols : int
        Array columns served by this unit.
    partial_width : int
        Width of the signed dot products.
    offset_term : bool
        Build the Q4_1 offset term (``mw``, ``act_sum``, ``offset``); without it those inputs are
        ignored.
    multiplier : str
        One of `MULTIPLIERS`. Each multiplier is only as wide as its operands' significands can
        be: 11 bits for a binary16 scale, 22 for a product of two, ``partial_width - 1`` for
        ``f32(partial)``, 12 for ``f32(act_sum)``.
    """

    def __init__(self, rows, cols, partial_width, *, offset_term=True, multiplier="infer"):
        if multiplier not in MULTIPLIERS:
            raise ValueError(f"multiplier must be one of {MULTIPLIERS}, not {multiplier!r}")
        self._rows, self._cols = rows, cols
        self._partial_width = partial_width
        self._offset_term = offset_term
        self._multiplier = multiplier
        # Latencies: "mul_s" of the products of two scales (ds, u), "mul_p" of the products
        # with f32(partial) and f32(act_sum) (t, v: each has a 22-bit operand, so they are of
        # one kind, which keeps them aligned at the adds).
        self._units = {"f16": Fp16ToFp32.latency, "int": IntToFp32.latency,
                       "mul_s": Fp32Multiply.latency_of(self._kind(11, 11)),
                       "mul_p": Fp32Multiply.latency_of(self._kind(22, ACT_SUM_WIDTH - 1)),
                       "add": Fp32Add.latency}
        u = self._units
        self._scale_ready = scale_ready = max(u["f16"] + u["mul_s"], u["int"])   # ds, u, f32(partial)
        # An item reaches the datapath `lookup` cycles after it is offered: the column select
        # (with a queue) and the scale set's lookup, each a register.
        self.lookup = 1 if cols == 1 else 2
        # The accumulator is read the cycle before t is ready (into a register: the read and
        # the first-block zero then stay off the adder's first stage).
        self._entry_read = scale_ready + u["mul_p"] - 1   # from the datapath's entry
        self.acc_read = self.lookup + self._entry_read
        self.latency = self.acc_read + 1 + 2 * u["add"]    # written back (registered)
        self.min_spacing = self.latency - self.acc_read + 1
        # What waits in a column's queue: the item without its scales.
        self.queued_layout = data.StructLayout({
            "row": range(rows),
            "partial": signed(partial_width),
            "set": 1,
        })

        def sets(shape, n):
            return In(data.ArrayLayout(data.ArrayLayout(shape, n), 2))
        super().__init__({
            "valid": In(data.ArrayLayout(1, cols)),
            "row": In(data.ArrayLayout(range(rows), cols)),
            "partial": In(data.ArrayLayout(signed(partial_width), cols)),
            "block": In(1),
            "dw": sets(16, cols),
            "mw": sets(16, cols),
            "dx": sets(16, rows),
            "act_sum": sets(signed(ACT_SUM_WIDTH), rows),
            "first": In(data.ArrayLayout(1, 2)),
            "last": In(data.ArrayLayout(1, 2)),
            "offset": In(1),
            "out_wr": In(1),
            "out_rd": In(1),
            "out_row": In(range(rows)),
            "out": Out(data.ArrayLayout(32, cols)),
            "final": Out(1),
            "final_row": Out(range(rows)),
            "final_col": Out(range(cols)),
        })

    def _kind(self, a_bits, b_bits):
        """The `Fp32Multiply` kind of an ``a_bits × b_bits`` significand product."""
        lut = self._multiplier == "lut" or (self._multiplier == "mixed" and
                                            max(a_bits, b_bits) <= 12)
        return "lut" if lut else "infer"

    def _write_bank(self, m, tag_done):
        """The output bank a result written now goes to: ``out_wr``, but the other one from the
        cycle after this unit wrote a tile's last result until ``out_wr`` has changed. The
        stage changes ``out_wr`` two cycles after that write (through its registered
        ``final``), and with ``rows × cols`` = 32 items a block and blocks back to back (K = 32
        tiles) the next tile's first result comes the cycle right after: it went to the bank
        still waiting for the drain (found by tests/test_dram_gemm.py's pair sums)."""
        tile_end = (tag_done.valid & tag_done.last & (tag_done.row == self._rows - 1)
                    & (tag_done.col == self._cols - 1))
        pending = Signal()          # this unit's tile is done, out_wr has not changed yet
        out_wr_q = Signal()
        changed = self.out_wr != out_wr_q
        m.d.sync += out_wr_q.eq(self.out_wr)
        with m.If(tile_end):
            m.d.sync += pending.eq(1)
        with m.Elif(changed):
            m.d.sync += pending.eq(0)
        return self.out_wr ^ (pending & ~changed)

    def elaborate(self, platform):
        m = Module()
        u = self._units
        rows, cols = self._rows, self._cols
        valid, col, item = look_up(self, m, rows, cols, self._partial_width,
                                   *select_item(self, m, rows, cols))

        def unit(name, component):
            m.submodules[name] = component
            return component

        def multiply(name, a_bits, b_bits):
            return unit(name, Fp32Multiply(a_bits=a_bits, b_bits=b_bits,
                                           multiplier=self._kind(a_bits, b_bits)))

        # Binary16 scales to binary32 (exact), then the exact binary16 products ds and u.
        cvt = {}
        for name in ("dw", "mw", "dx"):
            c = cvt[name] = unit(f"cvt_{name}", Fp16ToFp32())
            m.d.comb += [c.half.eq(getattr(item, name)), c.valid.eq(valid)]
        ds = multiply("mul_ds", 11, 11)
        m.d.comb += [ds.a.eq(cvt["dw"].result), ds.b.eq(cvt["dx"].result)]

        scale_ready = self._scale_ready
        ds_out = delay(m, ds.result, scale_ready - u["f16"] - u["mul_s"], "ds")

        pf = unit("cvt_partial", IntToFp32(self._partial_width))
        m.d.comb += [pf.value.eq(item.partial), pf.valid.eq(valid)]
        pf_out = delay(m, pf.result, scale_ready - u["int"], "pf")

        t = multiply("mul_t", self._partial_width - 1, 22)
        m.d.comb += [t.a.eq(pf_out), t.b.eq(ds_out)]

        # Item tags, delayed to the two adds.
        tag = data.StructLayout({"valid": 1, "row": range(rows), "col": range(cols), "first": 1,
                                 "last": 1, "offset": 1})
        tag_in = Signal(tag)
        m.d.comb += [tag_in.valid.eq(valid), tag_in.row.eq(item.row), tag_in.col.eq(col),
                     tag_in.first.eq(item.first), tag_in.last.eq(item.last),
                     tag_in.offset.eq(self.offset if self._offset_term else 0)]
        tag_read = delay(m, tag_in, self._entry_read, "tag_r")
        tag_add1 = delay(m, tag_read, 1, "tag_a")
        tag_add2 = delay(m, tag_add1, u["add"], "tag_b")
        tag_done = delay(m, tag_add2, u["add"], "tag_c")

        # The accumulators and the output registers are small memories read without a clock
        # (LUT RAM on an FPGA): the accumulators addressed by row and column, the outputs one
        # memory per column, addressed by bank and row.
        col_bits = (cols - 1).bit_length()
        # LUT RAM even where the accumulators are many (16 columns: 128 words) and the register
        # after the read would let a synthesizer take a block RAM (an ECP5 DP16KD then shows
        # its data 5.6 ns after the clock, straight into the adder).
        m.submodules.acc = acc = Memory(shape=32, depth=rows << col_bits, init=[],
                                        attrs={"ram_style": "distributed"})
        acc_rd = acc.read_port(domain="comb")
        acc_wr = acc.write_port()
        m.d.comb += [acc_rd.addr.eq(Cat(tag_read.col[:col_bits], tag_read.row)),
                     acc_wr.addr.eq(Cat(tag_done.col[:col_bits], tag_done.row))]
        write_bank = self._write_bank(m, tag_done)
        outs = []
        for g in range(cols):
            m.submodules[f"out_{g}"] = out = Memory(shape=32, depth=2 * rows, init=[])
            out_rd, out_wr = out.read_port(domain="comb"), out.write_port()
            m.d.comb += [out_rd.addr.eq(self.out_row + self.out_rd * rows),
                         out_wr.addr.eq(tag_done.row + write_bank * rows),
                         self.out[g].eq(out_rd.data)]
            outs.append(out_wr)

        acc_q = Signal(32)
        m.d.sync += acc_q.eq(Mux(tag_read.first, 0, acc_rd.data))
        add1 = unit("add_t", Fp32Add())
        m.d.comb += [add1.a.eq(acc_q), add1.b.eq(t.result)]

        add2 = unit("add_v", Fp32Add())
        v_out = 0
        if self._offset_term:
            uu = multiply("mul_u", 11, 11)
            m.d.comb += [uu.a.eq(cvt["mw"].result), uu.b.eq(cvt["dx"].result)]
            uu_out = delay(m, uu.result, scale_ready - u["f16"] - u["mul_s"], "u")
            sf = unit("cvt_sum", IntToFp32(ACT_SUM_WIDTH))
            m.d.comb += [sf.value.eq(item.act_sum), sf.valid.eq(valid)]
            sf_out = delay(m, sf.result, scale_ready - u["int"], "sf")
            v = multiply("mul_v", 22, ACT_SUM_WIDTH - 1)
            m.d.comb += [v.a.eq(uu_out), v.b.eq(sf_out)]
            v_out = delay(m, v.result, u["add"], "v")
        # Without the offset term the second adder adds +0, which leaves every value but -0 as
        # it is; -0 + +0 would be +0, so the sum bypasses the adder instead.
        sum1 = delay(m, add1.result, 0, "sum1")
        m.d.comb += [add2.a.eq(sum1), add2.b.eq(v_out)]
        sum1_late = delay(m, sum1, u["add"], "sum1_late")
        total = Signal(32)
        m.d.comb += total.eq(Mux(tag_done.offset, add2.result, sum1_late))

        m.d.comb += acc_wr.data.eq(total)
        m.d.comb += acc_wr.en.eq(tag_done.valid & ~tag_done.last)
        for g, out_wr in enumerate(outs):
            m.d.comb += [out_wr.data.eq(total),
                         out_wr.en.eq(tag_done.valid & tag_done.last & (tag_done.col == g))]
        m.d.sync += [
            self.final.eq(tag_done.valid & tag_done.last),
            self.final_row.eq(tag_done.row),
            self.final_col.eq(tag_done.col),
        ]
        return m
