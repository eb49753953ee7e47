"""The R×C output-stationary systolic array: skew in, PEs, result read-out."""

from amaranth.hdl import Module, Shape
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .delay import delay
from .multiplier import REGISTERED_KINDS, PairMultiplier, RegisteredMultiplier, product_latency
from .mux_tree import mux_tree
from .pe import PE, StepControl

__all__ = ["SystolicArray"]


class SystolicArray(wiring.Component):
    """An output-stationary array of ``rows`` × ``cols`` PEs.

    Each cycle the array takes one *step*: an activation column slice (``act[r]`` = A[r, k]), a
    weight row (``wgt[c]`` = W[k, c]) and its `StepControl`. Inside, row ``r`` of activations (and
    its control) is delayed by ``r`` cycles and column ``c`` of weights by ``c`` cycles, so PE
    (r, c) sees A[r, k] and W[k, c] together. Bubbles (``ctrl.valid = 0``) may be inserted anywhere.

    When the ``last`` step of a tile has reached every PE, ``done`` pulses and each PE's sum
    C[r, c] stays readable on ``row`` (column ``c`` shows row ``row_sel[c * select_copies //
    cols]``: each copy of the select chooses the row of ``cols / select_copies`` adjacent
    columns, so that no one register drives the multiplexers of the whole array) until the next tile's ``last`` step reaches
    it. The feeder must not issue the next tile's ``last`` step before the read-out is finished.

    ``row0_done`` pulses when that step has reached the whole of row 0 (PE (0, cols-1) captured):
    from then on, row ``r`` is complete ``r`` cycles later. Tiles whose last steps are at least
    ``cols`` cycles apart (the block formats' 32-blocks, with up to 32 columns) can so be read a
    row a cycle while the next tile accumulates: row ``r`` at ``r`` cycles after ``row0_done``
    shows every PE's sum of the tile, none of the next tile's. That is how the block formats'
    scale stage takes its dot products, through the same read-out multiplexers as the drain, with
    no logic of its own at the PEs.

    Parameters
    ----------
    rows, cols : int
        Array size.
    acc_width : int
        Accumulator bits in each PE (results on ``row`` are sign-extended from them).
    multiplier : str
        ``"infer"`` or ``"lut"`` (see `PE`), ``"pairs"``: PEs taken two by two (row-major)
        share a `PairMultiplier`, an odd one out infers its own; ``"registered"``: each PE has
        a `RegisteredMultiplier` (an ECP5 DSP with its input and output registers);
        ``"registered-fabric"``: the same with a fabric register after each DSP.
    select_copies : int
        How many copies of the read-out row select ``row_sel`` carries, concatenated (a plain
        value, not an array layout, whose elements' wires would change the netlists with one
        copy); a divisor of ``cols``.
    """

    def __init__(self, rows, cols, *, a_width=8, w_width=8, acc_width=32, multiplier="infer",
                 out_width=32, select_copies=1):
        if cols % select_copies:
            raise ValueError(f"select_copies must divide cols={cols}, not {select_copies}")
        self._rows, self._cols = rows, cols
        self._copies = select_copies
        self._sel_bits = Shape.cast(range(rows)).width
        self._multiplier = multiplier
        self._widths = dict(a_width=a_width, w_width=w_width, acc_width=acc_width)
        super().__init__({
            "act": In(data.ArrayLayout(data.signed(a_width), rows)),
            "wgt": In(data.ArrayLayout(data.signed(w_width), cols)),
            "ctrl": In(StepControl),
            "row_sel": In(self._sel_bits * select_copies),
            "row": Out(data.ArrayLayout(data.signed(out_width), cols)),
            "done": Out(1),
            "row0_done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols
        kind = self._multiplier
        paired = (rows * cols) // 2 * 2 if kind == "pairs" else 0

        def pe_kind(index):
            if kind == "pairs":
                return "external" if index < paired else "infer"
            if kind in REGISTERED_KINDS:
                return "external"
            return kind

        pes = [[PE(**self._widths, multiplier=pe_kind(r * cols + c),
                   product_latency=product_latency(kind))
                for c in range(cols)] for r in range(rows)]
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

        if kind in REGISTERED_KINDS:
            for i, pe in enumerate(flat):
                m.submodules[f"mul_{i}"] = mul = RegisteredMultiplier(
                    fabric_register=REGISTERED_KINDS[kind])
                m.d.comb += [mul.a.eq(pe.a_in), mul.w.eq(pe.w_in), pe.product_in.eq(mul.p)]

        # Operands are data only (their control's valid is reset): their skew registers have no
        # reset, which keeps the reset net out of the array.
        for r in range(rows):
            m.d.comb += [
                pes[r][0].a_in.eq(delay(m, self.act[r], r, f"act{r}", reset_less=True)),
                pes[r][0].ctrl_in.eq(delay(m, self.ctrl, r, f"ctrl{r}")),
            ]
            for c in range(1, cols):
                m.d.comb += [
                    pes[r][c].a_in.eq(pes[r][c - 1].a_out),
                    pes[r][c].ctrl_in.eq(pes[r][c - 1].ctrl_out),
                ]
        for c in range(cols):
            skewed = delay(m, self.wgt[c], c, f"wgt{c}", reset_less=True)
            m.d.comb += pes[0][c].w_in.eq(skewed)
            for r in range(1, rows):
                m.d.comb += pes[r][c].w_in.eq(pes[r - 1][c].w_out)

        for c in range(cols):
            sel = (self.row_sel if self._copies == 1 else
                   self.row_sel.word_select(c * self._copies // cols, self._sel_bits))
            m.d.comb += self.row[c].eq(mux_tree(sel, [pes[r][c].result for r in range(rows)]))
        m.d.comb += [self.done.eq(pes[rows - 1][cols - 1].done),
                     self.row0_done.eq(pes[0][cols - 1].done)]
        return m
