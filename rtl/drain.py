"""Drain: finished tiles leave as result rows, with where each row belongs."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .tile import TileMeta

__all__ = ["Drain", "ResultRow"]


def ResultRow(config):  # noqa: N802 (a layout factory reads like a type)
    """Layout of one result beat: a row of ``cols`` int32 sums and where it belongs."""
    return data.StructLayout({
        "data": data.ArrayLayout(data.signed(config.acc_width), config.cols),
        "row_tile": 16,
        "col_tile": 16,
        "rows": range(config.rows + 1),
        "cols": range(config.cols + 1),
        "first": 1,   # first row of a tile
        "last": 1,    # last row of a tile
        "end": 1,     # last row of the GEMM
    })


class Drain(wiring.Component):
    """Sends each finished tile's valid rows, one `ResultRow` a handshake.

    A tile's `TileMeta` arrives when its last step is issued and is kept (two entries: the
    tile in the result registers and the next) until its last row has left. Up to two finished
    tiles wait for the drain; it reads row ``row`` of the result registers (the array's, or in
    a block format the scale stage's output bank ``bank``).

    Ports
    -----
    start : in; a GEMM starts: ``busy`` until its last row has left.
    tiles : stream in (valid only) of the issued tiles' `TileMeta`.
    tile_done : in; a tile's results are ready to read.
    row_data : in; row ``row`` of the result registers.
    results : stream out of `ResultRow`, j-major, i-minor.
    row : out; the row being sent.
    row_next : out; ``row`` in the next cycle (the block formats' read-out follows it).
    bank : out; which of the two kept tiles is being sent.
    drained : out; a tile's last row leaves now.
    busy : out; a GEMM is running.
    """

    def __init__(self, config):
        self._config = config
        cfg = config
        super().__init__({
            "start": In(1),
            "tiles": In(stream.Signature(TileMeta(cfg), always_ready=True)),
            "tile_done": In(1),
            "row_data": In(data.ArrayLayout(data.signed(cfg.acc_width), cfg.cols)),
            "results": Out(stream.Signature(ResultRow(cfg))),
            "row": Out(range(cfg.rows)),
            "row_next": Out(range(cfg.rows)),
            "bank": Out(1),
            "drained": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        metas = Signal(data.ArrayLayout(TileMeta(cfg), 2))
        meta_wr = Signal()
        meta = metas[self.bank]
        with m.If(self.tiles.valid):
            m.d.sync += [meta_wr.eq(~meta_wr), metas[meta_wr].eq(self.tiles.payload)]

        draining = Signal()
        # Whether ``row`` is the tile's last is a register, loaded as the row starts (timing:
        # a compare on the tile's metadata in front of ``row_next``, which loads the block
        # formats' read-out selects, was an ECP5 build's critical path).
        row_is_last = Signal()
        waiting = Signal(range(3))      # finished tiles waiting for the drain
        begin = Signal()
        sent = self.results.valid & self.results.ready
        m.d.comb += [
            begin.eq(~draining & (waiting != 0)),
            self.drained.eq(sent & row_is_last),
            self.row_next.eq(Mux(begin, 0, Mux(sent & ~row_is_last, self.row + 1, self.row))),
        ]
        m.d.sync += waiting.eq(waiting + self.tile_done - begin)
        m.d.comb += [
            self.results.valid.eq(draining),
            self.results.payload.row_tile.eq(meta.row_tile),
            self.results.payload.col_tile.eq(meta.col_tile),
            self.results.payload.rows.eq(meta.rows),
            self.results.payload.cols.eq(meta.cols),
            self.results.payload.data.eq(self.row_data),
            self.results.payload.first.eq(self.row == 0),
            self.results.payload.last.eq(row_is_last),
            self.results.payload.end.eq(meta.end & row_is_last),
        ]
        with m.If(self.start):
            m.d.sync += self.busy.eq(1)
        with m.If(begin):
            m.d.sync += [draining.eq(1), self.row.eq(0), row_is_last.eq(meta.rows == 1)]
        with m.If(sent):
            with m.If(row_is_last):
                m.d.sync += [draining.eq(0), self.bank.eq(~self.bank)]
                with m.If(meta.end):
                    m.d.sync += self.busy.eq(0)
            with m.Else():
                m.d.sync += [self.row.eq(self.row + 1), row_is_last.eq(self.row + 2 == meta.rows)]
        return m
