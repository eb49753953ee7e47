"""The scale stage of one array column: block partial sums × block scales, accumulated in binary32."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .delay import delay
from .fp32 import Fp16ToFp32, Fp32Add, Fp32Multiply, IntToFp32

__all__ = ["ScaleColumn"]

ACT_SUM_WIDTH = 13   # |Σ x| over a 32-block of int8 in [-127, 127] is at most 4064


class ScaleColumn(wiring.Component):
    """Turns the integer block dot products of one column's PEs into binary32 results.

    Each *item* is one PE's dot product ``partial`` = Σ x·q over one 32-block, for array row
    ``row``, with that block's binary16 scales (``dw``, ``mw`` of the column's weight block, ``dx``
    of the row's activation block) and the activation block's sum ``act_sum``. The arithmetic is
    the one `systolica.host.block_formats` writes down:

        t = f32(partial) ⊗ (f32(dw) ⊗ f32(dx));  acc = acc ⊕ t
        if offset: v = (f32(mw) ⊗ f32(dx)) ⊗ f32(act_sum);  acc = acc ⊕ v

    with ``acc`` starting from +0 on a ``first`` item (the tile's first block). On a ``last`` item
    (the tile's last block) the sum goes to the row's output register instead, and ``final``
    pulses with ``final_row``. The output registers are two banks: finished tiles go to bank
    ``out_wr``, ``out`` shows row ``out_row`` of bank ``out_rd``, so one tile can be read out
    while the next one finishes.

    One item can enter per cycle. Items of the same row must be at least `min_spacing` cycles apart
    (the accumulator is read `acc_read` cycles after an item enters and written back
    ``latency`` cycles after); a PE finishes a block every 32 cycles at the most, so any array with
    up to 32 rows keeps up: its R PEs' items come one per cycle, in row order.

    Parameters
    ----------
    rows : int
        Array rows (accumulators in this column).
    partial_width : int
        Width of the signed dot products.
    offset_term : bool
        Build the Q4_1 offset term (``mw``, ``act_sum``, ``offset``); without it those inputs are
        ignored.
    """

    def __init__(self, rows, partial_width, *, offset_term=True):
        self._rows = rows
        self._partial_width = partial_width
        self._offset_term = offset_term
        self._units = {"f16": Fp16ToFp32.latency, "int": IntToFp32.latency,
                       "mul": Fp32Multiply.latency, "add": Fp32Add.latency}
        u = self._units
        scale_ready = max(u["f16"] + u["mul"], u["int"])   # ds, u and f32(partial) all ready
        self.acc_read = scale_ready + u["mul"]             # t ready: acc is read
        self.latency = self.acc_read + 2 * u["add"]        # written back (registered)
        self.min_spacing = self.latency - self.acc_read + 1
        super().__init__({
            "valid": In(1),
            "row": In(range(rows)),
            "partial": In(signed(partial_width)),
            "act_sum": In(signed(ACT_SUM_WIDTH)),
            "dw": In(16),
            "mw": In(16),
            "dx": In(16),
            "first": In(1),
            "last": In(1),
            "offset": In(1),
            "out_wr": In(1),
            "out_rd": In(1),
            "out_row": In(range(rows)),
            "out": Out(32),
            "final": Out(1),
            "final_row": Out(range(rows)),
        })

    def elaborate(self, platform):
        m = Module()
        u = self._units
        rows = self._rows

        def unit(name, component):
            m.submodules[name] = component
            return component

        # Binary16 scales to binary32 (exact), then the exact binary16 products ds and u.
        cvt = {}
        for name in ("dw", "mw", "dx"):
            c = cvt[name] = unit(f"cvt_{name}", Fp16ToFp32())
            m.d.comb += [c.half.eq(getattr(self, name)), c.valid.eq(self.valid)]
        ds = unit("mul_ds", Fp32Multiply())
        m.d.comb += [ds.a.eq(cvt["dw"].result), ds.b.eq(cvt["dx"].result)]

        scale_ready = max(u["f16"] + u["mul"], u["int"])
        ds_out = delay(m, ds.result, scale_ready - u["f16"] - u["mul"], "ds")

        pf = unit("cvt_partial", IntToFp32(self._partial_width))
        m.d.comb += [pf.value.eq(self.partial), pf.valid.eq(self.valid)]
        pf_out = delay(m, pf.result, scale_ready - u["int"], "pf")

        t = unit("mul_t", Fp32Multiply())
        m.d.comb += [t.a.eq(pf_out), t.b.eq(ds_out)]

        # Item tags, delayed to the two adds.
        tag = data.StructLayout({"valid": 1, "row": range(rows), "first": 1, "last": 1,
                                 "offset": 1})
        tag_in = Signal(tag)
        m.d.comb += [tag_in.valid.eq(self.valid), tag_in.row.eq(self.row),
                     tag_in.first.eq(self.first), tag_in.last.eq(self.last),
                     tag_in.offset.eq(self.offset if self._offset_term else 0)]
        tag_add1 = delay(m, tag_in, self.acc_read, "tag_a")
        tag_add2 = delay(m, tag_add1, u["add"], "tag_b")
        tag_done = delay(m, tag_add2, u["add"], "tag_c")

        acc = Signal(data.ArrayLayout(32, rows))
        out = Signal(data.ArrayLayout(data.ArrayLayout(32, rows), 2))

        add1 = unit("add_t", Fp32Add())
        m.d.comb += [
            add1.a.eq(Mux(tag_add1.first, 0, acc[tag_add1.row])),
            add1.b.eq(t.result),
        ]

        add2 = unit("add_v", Fp32Add())
        v_out = 0
        if self._offset_term:
            uu = unit("mul_u", Fp32Multiply())
            m.d.comb += [uu.a.eq(cvt["mw"].result), uu.b.eq(cvt["dx"].result)]
            uu_out = delay(m, uu.result, scale_ready - u["f16"] - u["mul"], "u")
            sf = unit("cvt_sum", IntToFp32(ACT_SUM_WIDTH))
            m.d.comb += [sf.value.eq(self.act_sum), sf.valid.eq(self.valid)]
            sf_out = delay(m, sf.result, scale_ready - u["int"], "sf")
            v = unit("mul_v", Fp32Multiply())
            m.d.comb += [v.a.eq(uu_out), v.b.eq(sf_out)]
            v_out = delay(m, v.result, u["add"], "v")
        # Without the offset term the second adder adds +0, which leaves every value but -0 as
        # it is; -0 + +0 would be +0, so the sum bypasses the adder instead.
        sum1 = delay(m, add1.result, 0, "sum1")
        m.d.comb += [add2.a.eq(sum1), add2.b.eq(v_out)]
        sum1_late = delay(m, sum1, u["add"], "sum1_late")
        total = Signal(32)
        m.d.comb += total.eq(Mux(tag_done.offset, add2.result, sum1_late))

        with m.If(tag_done.valid):
            with m.If(tag_done.last):
                m.d.sync += out[self.out_wr][tag_done.row].eq(total)
            with m.Else():
                m.d.sync += acc[tag_done.row].eq(total)
        m.d.sync += [
            self.final.eq(tag_done.valid & tag_done.last),
            self.final_row.eq(tag_done.row),
        ]
        m.d.comb += self.out.eq(out[self.out_rd][self.out_row])
        return m
