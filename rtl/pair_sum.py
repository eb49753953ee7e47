"""Pair sums: a GEMM_DRAM's result rows 2t and 2t+1 added into one row before they leave."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .drain import ResultRow
from .fp32_add import Fp32Add

__all__ = ["PairSum"]


class PairSum(wiring.Component):
    """Passes result rows through, or (``pair``) sends the binary32 sum of each two.

    The host puts an activation's two int8 terms in rows 2t and 2t+1 (`protocol`'s pair sums);
    their binary32 results are added here, column by column through one `Fp32Add` (round to
    nearest even, flush-to-zero: `systolica.fp32_model.f32_add`), so that only the sum crosses
    the link. A tile's rows arrive in order and every tile has an even number of rows (N is
    even, and so is ``rows``): the first of a pair is kept, the second kept too, then their
    ``cols`` columns go through the adder one a cycle, the sums are shifted into the output
    row, and it leaves with half the tile's rows (``rows``), the first row's ``first`` and the
    second's ``last`` and ``end``. A pair takes ``cols`` + `Fp32Add.latency` + 3 cycles; a
    block GEMM's tile takes at least K = 32 cycles a block, so the array never waits for it.

    Without ``pair`` the rows pass straight through (no register: the result stage after this
    one has them).

    Ports
    -----
    pair : in; this GEMM's rows are pairs to add. Holds while its results leave (it is set when
        a GEMM is accepted, and the next is accepted only after this one's reply).
    i : stream in of `ResultRow` (binary32 data in a block GEMM).
    o : stream out of `ResultRow`.
    """

    def __init__(self, config):
        if config.acc_width != 32 or config.rows % 2:
            raise ValueError(f"pair sums need 32-bit results and an even number of rows, not "
                             f"{config.label()}")
        self._config = config
        super().__init__({
            "pair": In(1),
            "i": In(stream.Signature(ResultRow(config))),
            "o": Out(stream.Signature(ResultRow(config))),
        })

    def elaborate(self, platform):
        m = Module()
        cols = self._config.cols
        m.submodules.add = add = Fp32Add()
        first = Signal(ResultRow(self._config))     # row 2t
        second = Signal(ResultRow(self._config))    # row 2t+1 (its fields go out with the sum)
        a = Signal(32 * cols)                       # the columns not yet fed, low word next
        b = Signal(32 * cols)
        sums = Signal(32 * cols)                    # the sums so far, shifted in from the top
        fed = Signal(range(cols + 1))
        summed = Signal(range(cols + 1))
        m.d.comb += [add.a.eq(a[:32]), add.b.eq(b[:32])]
        with m.If(add.result_valid):
            m.d.sync += [sums.eq(Cat(sums[32:], add.result)), summed.eq(summed + 1)]

        with m.FSM():
            with m.State("FIRST"):
                with m.If(~self.pair):
                    m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload),
                                 self.i.ready.eq(self.o.ready)]
                with m.Else():
                    m.d.comb += self.i.ready.eq(1)
                    with m.If(self.i.valid):
                        m.d.sync += first.eq(self.i.payload)
                        m.next = "SECOND"
            with m.State("SECOND"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [second.eq(self.i.payload), a.eq(first.data.as_value()),
                                 b.eq(self.i.payload.data.as_value()), fed.eq(0), summed.eq(0)]
                    m.next = "ADD"
            with m.State("ADD"):
                with m.If(fed != cols):
                    m.d.comb += add.valid.eq(1)
                    m.d.sync += [a.eq(a >> 32), b.eq(b >> 32), fed.eq(fed + 1)]
                with m.If(summed == cols):
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [
                    self.o.valid.eq(1),
                    self.o.payload.eq(second),
                    self.o.payload.data.eq(sums),
                    self.o.payload.rows.eq(second.rows >> 1),
                    self.o.payload.first.eq(first.first),
                ]
                with m.If(self.o.ready):
                    m.next = "FIRST"
        return m
