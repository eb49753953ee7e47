"""Column turns: the items a group of array columns offers, one a cycle, column by column."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .mux_tree import mux_tree

__all__ = ["ColumnTurns"]


class ColumnTurns(wiring.Component):
    """Lets ``cols`` columns' items into one datapath that takes one item a cycle.

    Each column's items wait in a FIFO of ``rows + 1``; the columns take turns, column 0 first,
    each sending ``rows`` items (one block's: every column offers exactly ``rows`` items a
    block, as the array does) before the next column's turn. Every decision starts from
    flip-flops and the queues' fill counts (a priority encoder over 16 queues, as the scale
    unit first had, took 13 ns on an ECP5).

    Parameters
    ----------
    rows, cols : int
        Array rows (items a column sends a turn) and the columns of the group (at least 2).
    layout : data.Layout
        An item.

    Ports
    -----
    valid, item : in, one a column; column ``g`` offers ``item[g]`` when ``valid[g]``.
    out_valid, out_col, out_item : out, registered: the item let in this cycle and its column.
    """

    def __init__(self, rows, cols, layout):
        if not (isinstance(cols, int) and cols >= 2):
            raise ValueError(f"cols must be an integer of at least 2, not {cols!r}")
        self._rows, self._cols, self._layout = rows, cols, layout
        super().__init__({
            "valid": In(data.ArrayLayout(1, cols)),
            "item": In(data.ArrayLayout(layout, cols)),
            "out_valid": Out(1),
            "out_col": Out(range(cols)),
            "out_item": Out(layout),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols
        # Column ``turn`` sends (one-hot in ``turn_bit``, so each queue's read enable is one
        # gate) until ``rows`` have gone, then the next.
        turn = Signal(range(cols))
        turn_bit = Signal(cols, init=1)
        sent = Signal(range(rows))
        queues = []
        for g in range(cols):
            fifo = SyncFIFO(width=self._layout.size, depth=rows + 1)
            m.submodules[f"queue_{g}"] = fifo
            m.d.comb += [fifo.w_data.eq(self.item[g]), fifo.w_en.eq(self.valid[g]),
                         fifo.r_en.eq(fifo.r_rdy & turn_bit[g])]
            queues.append(fifo)
        take = Signal()
        m.d.comb += take.eq(Cat(q.r_en for q in queues).any())
        m.d.sync += [self.out_valid.eq(take), self.out_col.eq(turn),
                     self.out_item.eq(mux_tree(turn, [q.r_data for q in queues]))]
        with m.If(take):
            with m.If(sent == rows - 1):
                m.d.sync += [sent.eq(0), turn_bit.eq(turn_bit.rotate_left(1)),
                             turn.eq(Mux(turn == cols - 1, 0, turn + 1))]
            with m.Else():
                m.d.sync += sent.eq(sent + 1)
        return m
