"""Picks one link word of a held result row in two registered steps (the framer's row select)."""

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RowPicker"]


class RowPicker(wiring.Component):
    """Word ``word`` of a result row of ``cols`` 32-bit sums (column 0 first, each sum
    ``4 / link_bytes`` link words, low bytes first), on ``picked`` ``latency`` cycles after
    ``word`` (and ``row``) are set.

    A row's sums come from the whole array, which on a large part spans the die: one select
    over all of it (a 64-way byte select at 16 columns and a 1-byte link) is long routes
    in front of one register. Here each column's word is chosen first, into a register of that
    column's (which the placer can put beside the column's sum), and then the column, into
    ``picked``. The second step's select is a register of its own, loaded in the first step, so
    ``word``'s flip-flops (which also feed every column's select) are not on its path. Neither
    step has an enable, and ``word`` need not be held: a new one may follow every cycle. For
    links of at most 4 bytes (`Config.row_hold`).

    Ports
    -----
    row : in; the row's ``cols`` sums, column 0 in the low bits.
    word : in; which link word of the row.
    picked : out; that word, ``latency`` cycles later.

    Parameters
    ----------
    config : Config
        ``cols``, ``link_bytes`` (1, 2 or 4).
    """

    latency = 2

    def __init__(self, config):
        self._config = config
        lb = config.link_bytes
        if 4 % lb:
            raise ValueError(f"RowPicker is for links of 1, 2 or 4 bytes, not {lb}")
        super().__init__({
            "row": In(32 * config.cols),
            "word": In(range(4 // lb * config.cols)),
            "picked": Out(8 * lb),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        width = 8 * cfg.link_bytes
        log_per = (4 // cfg.link_bytes).bit_length() - 1      # words a sum takes: 2 ** log_per
        column = Signal(len(self.word) - log_per)      # the second step's select
        m.d.sync += column.eq(self.word[log_per:])
        chosen = Array(Signal(width, name=f"column_{c}") for c in range(cfg.cols))
        for c in range(cfg.cols):
            value = self.row[32 * c:32 * (c + 1)]
            m.d.sync += chosen[c].eq(value.word_select(self.word[:log_per], width) if log_per
                                     else value)
        m.d.sync += self.picked.eq(chosen[column])
        return m
