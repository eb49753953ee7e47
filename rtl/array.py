"""The R×C output-stationary systolic array: skew in, PEs, result read-out."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .multiplier import PairMultiplier
from .pe import PE, StepControl

__all__ = ["SystolicArray"]


class SystolicArray(wiring.Component):
    """An output-stationary array of ``rows`` × ``cols`` PEs.

    Each cycle the array takes one *step*: an activation column slice (``act[r]`` = A[r, k]), a
    weight row (``wgt[c]`` = W[k, c]) and its `StepControl`. Inside, row ``r`` of activations (and
    its control) is delayed by ``r`` cycles and column ``c`` of weights by ``c`` cycles, so PE
    (r, c) sees A[r, k] and W[k, c] together. Bubbles (``ctrl.valid = 0``) may be inserted anywhere.

    When the ``last`` step of a tile has reached every PE, ``done`` pulses and each PE's sum
    C[r, c] stays readable on ``row`` (row ``row_sel``) until the next tile's ``last`` step reaches
    it. The feeder must not issue the next tile's ``last`` step before the read-out is finished.

    Parameters
    ----------
    rows, cols : int
        Array size.
    acc_width : int
        Accumulator bits in each PE (results on ``row`` are sign-extended from them).
    multiplier : str
        ``"infer"`` or ``"lut"`` (see `PE`), or ``"pairs"``: PEs taken two by two (row-major)
        share a `PairMultiplier`; an odd one out infers its own.
    """

    def __init__(self, rows, cols, *, a_width=8, w_width=8, acc_width=32, multiplier="infer",
                 out_width=32):
        self._rows, self._cols = rows, cols
        self._multiplier = multiplier
        self._widths = dict(a_width=a_width, w_width=w_width, acc_width=acc_width)
        super().__init__({
            "act": In(data.ArrayLayout(data.signed(a_width), rows)),
            "wgt": In(data.ArrayLayout(data.signed(w_width), cols)),
            "ctrl": In(StepControl),
            "row_sel": In(range(rows)),
            "row": Out(data.ArrayLayout(data.signed(out_width), cols)),
            "done": Out(1),
        })

    @staticmethod
    def _delay(m, value, cycles, name):
        for i in range(cycles):
            stage = Signal.like(value, name=f"{name}_d{i}")
            m.d.sync += stage.eq(value)
            value = stage
        return value

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols
        kind = self._multiplier
        paired = (rows * cols) // 2 * 2 if kind == "pairs" else 0

        def pe_kind(index):
            if kind == "pairs":
                return "external" if index < paired else "infer"
            return kind

        pes = [[PE(**self._widths, multiplier=pe_kind(r * cols + c)) for c in range(cols)]
               for r in range(rows)]
        for r in range(rows):
            for c in range(cols):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]
        flat = [pe for row in pes for pe in row]
        for i in range(0, paired, 2):
            m.submodules[f"mul_{i // 2}"] = mul = PairMultiplier()
            m.d.comb += [
                mul.a0.eq(flat[i].a_in), mul.w0.eq(flat[i].w_in),
                mul.a1.eq(flat[i + 1].a_in), mul.w1.eq(flat[i + 1].w_in),
                flat[i].product_in.eq(mul.p0), flat[i + 1].product_in.eq(mul.p1),
            ]

        for r in range(rows):
            m.d.comb += [
                pes[r][0].a_in.eq(self._delay(m, self.act[r], r, f"act{r}")),
                pes[r][0].ctrl_in.eq(self._delay(m, self.ctrl, r, f"ctrl{r}")),
            ]
            for c in range(1, cols):
                m.d.comb += [
                    pes[r][c].a_in.eq(pes[r][c - 1].a_out),
                    pes[r][c].ctrl_in.eq(pes[r][c - 1].ctrl_out),
                ]
        for c in range(cols):
            m.d.comb += pes[0][c].w_in.eq(self._delay(m, self.wgt[c], c, f"wgt{c}"))
            for r in range(1, rows):
                m.d.comb += pes[r][c].w_in.eq(pes[r - 1][c].w_out)

        with m.Switch(self.row_sel):
            for r in range(rows):
                with m.Case(r):
                    m.d.comb += [self.row[c].eq(pes[r][c].result) for c in range(cols)]
        m.d.comb += self.done.eq(pes[rows - 1][cols - 1].done)
        return m
