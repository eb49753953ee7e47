"""A `ScaleUnit`'s items: one a cycle from its columns' queues, then its block's scales looked
up (the unit's first two steps; functions of the unit, which owns the ports they use)."""

from amaranth.hdl import Mux, Signal, signed
from amaranth.lib import data

from .column_turns import ColumnTurns
from .mux_tree import mux_tree

__all__ = ["look_up", "select_item"]

ACT_SUM_WIDTH = 13   # |Σ x| over a 32-block of int8 in [-127, 127] is at most 4064


def select_item(unit, m, rows, cols):
    """One queued item a cycle from ``unit``'s ``cols`` columns (of ``rows`` rows each): (valid,
    column, queued item)."""
    offered = []
    for g in range(cols):
        item = Signal(unit.queued_layout, name=f"offered_{g}")
        m.d.comb += [item.row.eq(unit.row[g]), item.partial.eq(unit.partial[g]),
                     item.set.eq(unit.block)]
        offered.append(item)
    if cols == 1:
        return unit.valid[0], 0, offered[0]
    m.submodules.turns = turns = ColumnTurns(rows, cols, unit.queued_layout)
    m.d.comb += turns.valid.eq(unit.valid)
    m.d.comb += [turns.item[g].eq(offered[g]) for g in range(cols)]
    return turns.out_valid, turns.out_col, turns.out_item

def look_up(unit, m, rows, cols, partial_width, valid, col, queued):
    """The item with its block's scales from its scale set, into registers."""
    item_valid = Signal()
    item_col = Signal(range(cols))
    item = Signal(data.StructLayout({
        "row": range(rows), "partial": signed(partial_width),
        "act_sum": signed(ACT_SUM_WIDTH), "dw": 16, "mw": 16, "dx": 16,
        "first": 1, "last": 1,
    }))
    which = queued.set

    def pick(sel, sets):
        """``sets[which][sel]``."""
        if len(sets[0]) == 1:
            return Mux(which, sets[1][0], sets[0][0])
        return Mux(which, mux_tree(sel, sets[1]), mux_tree(sel, sets[0]))

    row_range = range(rows)
    col_range = range(cols)
    m.d.sync += [
        item_valid.eq(valid), item_col.eq(col),
        item.row.eq(queued.row), item.partial.eq(queued.partial),
        item.first.eq(pick(None, [[unit.first[s]] for s in range(2)])),
        item.last.eq(pick(None, [[unit.last[s]] for s in range(2)])),
        item.dw.eq(pick(col, [[unit.dw[s][g] for g in col_range] for s in range(2)])),
        item.mw.eq(pick(col, [[unit.mw[s][g] for g in col_range] for s in range(2)])),
        item.dx.eq(pick(queued.row, [[unit.dx[s][r] for r in row_range] for s in range(2)])),
        item.act_sum.eq(pick(queued.row, [[unit.act_sum[s][r] for r in row_range]
                                          for s in range(2)])),
    ]
    return item_valid, item_col, item
