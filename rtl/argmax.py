"""Argmax: a one-row GEMM_DRAM's results reduced to the column and value of the largest."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .drain import ResultRow

__all__ = ["ArgMax"]


def order_key(bits):
    """A signed value that orders binary32 patterns as the numbers they are, -0 equal to +0
    (`systolica.fp32_model.f32_order_key`)."""
    magnitude = bits[:31]
    return Mux(bits[31], -magnitude, magnitude)


class ArgMax(wiring.Component):
    """Passes result rows through, or (``argmax``) sends only the largest result's column and
    value (`protocol`'s argmax).

    With ``argmax`` the GEMM's results are one row (its row tiles hold one row each), so every
    row that arrives is a column tile of it. Each row's ``cols`` valid values are compared one a
    cycle with the largest so far (as numbers: `order_key`; a later value wins only if larger,
    so the first of equal ones stays); after the GEMM's last row (``end``) one row leaves: the
    column in ``data[0]``, the value's binary32 pattern in ``data[1]``, as a tile (0, 0) of one
    row of two values, ``first``, ``last`` and ``end`` set. A column tile's ``cols`` cycles are
    far fewer than its K ≥ 32 cycles of computing.

    Without ``argmax`` the rows pass straight through (no register).

    Ports
    -----
    argmax : in; this GEMM sends its argmax. Holds while its results leave.
    i : stream in of `ResultRow` (binary32 data).
    o : stream out of `ResultRow`.
    """

    def __init__(self, config):
        if config.acc_width != 32 or config.cols < 2:
            raise ValueError(f"argmax needs 32-bit results and two columns or more, not "
                             f"{config.label()}")
        self._config = config
        super().__init__({
            "argmax": In(1),
            "i": In(stream.Signature(ResultRow(config))),
            "o": Out(stream.Signature(ResultRow(config))),
        })

    def elaborate(self, platform):
        m = Module()
        cols = self._config.cols
        values = Signal(32 * cols)          # the row's values not yet compared, low word next
        column = Signal(16)                 # the column of values[:32]
        left = Signal(range(cols + 1))      # valid values of the row not yet compared
        end = Signal()                      # the row is the GEMM's last
        have = Signal()                     # a value has been kept (this GEMM)
        best = Signal(32)
        best_key = Signal(signed(32))
        best_column = Signal(16)

        with m.FSM():
            with m.State("TAKE"):
                with m.If(~self.argmax):
                    m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload),
                                 self.i.ready.eq(self.o.ready)]
                with m.Else():
                    m.d.comb += self.i.ready.eq(1)
                    with m.If(self.i.valid):
                        row = self.i.payload
                        m.d.sync += [values.eq(row.data.as_value()), left.eq(row.cols),
                                     column.eq(row.col_tile * cols), end.eq(row.end)]
                        m.next = "COMPARE"
            with m.State("COMPARE"):
                value = values[:32]
                key = order_key(value)
                with m.If(left != 0):
                    with m.If(~have | (key > best_key)):
                        m.d.sync += [best.eq(value), best_key.eq(key), best_column.eq(column),
                                     have.eq(1)]
                    m.d.sync += [values.eq(values >> 32), column.eq(column + 1),
                                 left.eq(left - 1)]
                with m.Else():
                    with m.If(end):
                        m.next = "SEND"
                    with m.Else():
                        m.next = "TAKE"
            with m.State("SEND"):
                out = self.o.payload
                m.d.comb += [
                    self.o.valid.eq(1),
                    out.data[0].eq(best_column), out.data[1].eq(best),
                    out.row_tile.eq(0), out.col_tile.eq(0), out.rows.eq(1), out.cols.eq(2),
                    out.first.eq(1), out.last.eq(1), out.end.eq(1),
                ]
                with m.If(self.o.ready):
                    m.d.sync += have.eq(0)
                    m.next = "TAKE"
        return m
