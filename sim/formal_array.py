"""Formal check: the systolic array computes exact int8 sums of products.

The spec drives a `SystolicArray` as the sequencer does (`rtl/sequencer.py`): one step a cycle,
an activation column slice ``act[r]`` = A[r, k], a weight row ``wgt[c]`` = W[k, c] and its
`StepControl`, with ``last`` on step K-1. A[r, k] and W[k, c] are ``AnyConst``: one run of the
solver covers every int8 value of each. Optionally (``bubbles``) the feeder stalls between steps
(``AnySeq``; a bubble carries any data on the operands), K is any of 1 .. ``max_k``
(``k=None``), and a tile of anything (``AnySeq`` steps ended by a ``last`` step) comes first
(``earlier_tile``), so that the checked tile's accumulators were cleared by a ``last`` rather
than set by reset.

Asserted: exactly `ArraySums.latency` cycles after the checked tile's ``last`` step enters,
``done`` is high, and from then on (only bubbles follow) every PE's result, read on ``row``
through ``row_sel`` (any row, chosen anew each cycle), equals the reference sum for (r, c):

* ``reference="operands"``: sum over k < K of A[r, k]·W[k, c], from the ``AnyConst`` operands
  (the property as stated; the solver proves the array's multipliers equal the spec's, which is
  quick when the schedule is fixed: no bubbles, K fixed);
* ``reference="driven"``: the sum of ``act[r]·wgt[c]`` over the valid steps of the checked tile,
  as the spec drove them (the same number, since the spec drives A[r, k] and W[k, c] on step k,
  which it also asserts; the products are then the same terms as the array's, and bubbles and a
  free K stay tractable).

The run is bounded by its depth only through the bubbles and earlier steps it can fit: with a
fixed schedule, ``K + latency + 1`` cycles cover the whole computation.
"""

from amaranth.hdl import Assert, Assume, Const, Cover, Elaboratable, Module, Mux, Signal
from amaranth.lib import data

from systolica.config import Config
from systolica.rtl.array import SystolicArray
from systolica.rtl.multiplier import product_latency
from systolica.rtl.pe import StepControl

from .formal_props import any_const, any_seq

__all__ = ["ArraySums"]


class ArraySums(Elaboratable):
    """A ``rows`` × ``cols`` `SystolicArray` as the int8 path builds it (`GemmEngine`:
    ``acc_width`` = `Config.acc_bits`, results out as int32; ``multiplier`` as `Config`'s).

    Parameters
    ----------
    max_k : int
        Largest K of the checked tile.
    k : int or None
        The checked tile's K; None: any of 1 .. ``max_k`` (``AnyConst``).
    bubbles, earlier_tile : bool
        See the module.
    reference : "driven" or "operands"
        What the results are compared with (see the module).
    off_by : int
        Added to the reference sums: a property that must fail (the harness's own test).
    """

    def __init__(self, rows=2, cols=2, max_k=3, *, k=None, multiplier="infer", bubbles=True,
                 earlier_tile=True, reference="driven", off_by=0):
        if reference not in ("driven", "operands"):
            raise ValueError(f"reference must be 'driven' or 'operands', not {reference!r}")
        if k is not None and not 1 <= k <= max_k:
            raise ValueError(f"k must be None or in 1..{max_k}, not {k!r}")
        self.rows, self.cols, self.max_k, self.k = rows, cols, max_k, k
        self.multiplier = multiplier
        self.bubbles, self.earlier_tile = bubbles, earlier_tile
        self.reference, self.off_by = reference, off_by

    @property
    def latency(self):
        """Cycles from a tile's ``last`` step entering the array to ``done``: the skew to PE
        (R-1, C-1), the product's latency and the result register."""
        return (self.rows - 1) + (self.cols - 1) + product_latency(self.multiplier) + 1

    def elaborate(self, platform):
        m = Module()
        rows, cols, max_k = self.rows, self.cols, self.max_k
        cfg = Config(rows=rows, cols=cols, multiplier=self.multiplier)
        m.submodules.array = array = SystolicArray(
            rows, cols, acc_width=cfg.acc_bits, multiplier=cfg.multiplier,
            out_width=cfg.acc_width)

        s8 = data.signed(8)
        a = [[any_const(m, s8, f"a_{r}_{k}") for k in range(max_k)] for r in range(rows)]
        w = [[any_const(m, s8, f"w_{k}_{c}") for c in range(cols)] for k in range(max_k)]
        k_len = any_const(m, range(max_k + 1), "k_len")
        m.d.comb += Assume((k_len >= 1) & (k_len <= max_k))
        if self.k is not None:
            m.d.comb += Assume(k_len == self.k)
        m.d.comb += array.row_sel.eq(any_seq(m, range(rows), "row_sel"))
        if rows & (rows - 1):
            m.d.comb += Assume(array.row_sel < rows)

        # Phases: 0 the earlier tile, 1 the checked tile's steps, 2 its results.
        phase = Signal(2, init=0 if self.earlier_tile else 1)
        k = Signal(range(max_k + 1))
        since = Signal(range(self.latency + 2))     # cycles since the checked last step
        stall = any_seq(m, 1, "stall") if self.bubbles else Const(0, 1)
        # Unless the checked tile's step says otherwise, the operands carry anything.
        m.d.comb += [array.act[r].eq(any_seq(m, s8, f"act_noise_{r}")) for r in range(rows)]
        m.d.comb += [array.wgt[c].eq(any_seq(m, s8, f"wgt_noise_{c}")) for c in range(cols)]
        with m.Switch(phase):
            with m.Case(0):
                earlier = any_seq(m, StepControl, "earlier_step")
                m.d.comb += array.ctrl.eq(earlier)
                with m.If(earlier.valid & earlier.last):
                    m.d.sync += phase.eq(1)
            with m.Case(1):
                step = ~stall
                last = step & (k == k_len - 1)
                with m.If(step):
                    m.d.comb += [array.act[r].eq(_pick(a[r], k)) for r in range(rows)]
                    m.d.comb += [array.wgt[c].eq(_pick([w[i][c] for i in range(max_k)], k))
                                 for c in range(cols)]
                    m.d.sync += k.eq(k + 1)
                m.d.comb += [array.ctrl.valid.eq(step), array.ctrl.last.eq(last)]
                with m.If(last):
                    m.d.sync += [phase.eq(2), since.eq(1)]
            with m.Case(2):
                # Bubbles only (a next tile's steps would do as long as no ``last`` came).
                m.d.comb += array.ctrl.eq(0)
                with m.If(since <= self.latency):
                    m.d.sync += since.eq(since + 1)

        if self.reference == "driven":
            sums = self._driven_sums(m, array, phase)
            # The operands driven on step k are A[r, k] and W[k, c]: by construction, asserted.
            with m.If((phase == 1) & array.ctrl.valid):
                for i in range(max_k):
                    with m.If(k == i):
                        m.d.comb += [Assert(array.act[r] == a[r][i]) for r in range(rows)]
                        m.d.comb += [Assert(array.wgt[c] == w[i][c]) for c in range(cols)]
        else:
            sums = [[sum(Mux(i < k_len, a[r][i] * w[i][c], 0) for i in range(max_k))
                     for c in range(cols)] for r in range(rows)]

        ready = (phase == 2) & (since >= self.latency)
        for c in range(cols):
            expected = Signal(data.signed(32), name=f"expected_{c}")
            m.d.comb += expected.eq(_pick([sums[r][c] for r in range(rows)], array.row_sel)
                                    + self.off_by)
            with m.If(ready):
                m.d.comb += Assert(array.row[c] == expected,
                                   f"column {c}: the result is not sum(A[r, k] W[k, {c}])")
        with m.If((phase == 2) & (since == self.latency)):
            m.d.comb += Assert(array.done, "done is not high `latency` cycles after last")
        m.d.comb += Cover(ready & (k_len == max_k))
        return m

    def _driven_sums(self, m, array, phase):
        """Per PE, the sum of ``act[r]·wgt[c]`` over the checked tile's valid steps."""
        sums = [[Signal(data.signed(32), name=f"sum_{r}_{c}") for c in range(self.cols)]
                for r in range(self.rows)]
        with m.If((phase == 1) & array.ctrl.valid):
            m.d.sync += [sums[r][c].eq(sums[r][c] + array.act[r] * array.wgt[c])
                         for r in range(self.rows) for c in range(self.cols)]
        return sums


def _pick(values, index):
    """``values[index]`` (the last one for an index past the end)."""
    out = values[-1]
    for i in reversed(range(len(values) - 1)):
        out = Mux(index == i, values[i], out)
    return out
