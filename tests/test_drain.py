"""The drain alone: every finished tile's valid rows leave in order with where they belong,
under random backpressure, with at most two tiles in flight as the sequencer allows."""

import numpy as np
import pytest
from streams import receive, simulate

from systolica.config import Config
from systolica.rtl.drain import Drain


def tiles_of(n, m, rows, cols):
    """The tiles of an N x M result, j-major, i-minor: (row_tile, col_tile, rows, cols, end)."""
    ti, tj = -(-n // rows), -(-m // cols)
    return [(i, j, min(rows, n - i * rows), min(cols, m - j * cols), i == ti - 1 and j == tj - 1)
            for j in range(tj) for i in range(ti)]


def run_drain(config, n, m, p_stall, seed):
    rng = np.random.default_rng(seed)
    dut = Drain(config)
    tiles = tiles_of(n, m, config.rows, config.cols)
    data = rng.integers(-2**31, 2**31, size=(len(tiles), config.rows, config.cols))
    state = {"drained": 0, "busy_after": None, "row_next_wrong": 0}
    expected_rows = sum(t[2] for t in tiles)

    async def sequencer(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for t, (i, j, r, c, end) in enumerate(tiles):
            while t - state["drained"] >= 2:        # room for two tiles' results
                await ctx.tick()
            ctx.set(dut.tiles.valid, 1)
            ctx.set(dut.tiles.payload, {"row_tile": i, "col_tile": j, "rows": r, "cols": c,
                                        "end": end})
            await ctx.tick()
            ctx.set(dut.tiles.valid, 0)
            for _ in range(int(rng.integers(0, 6))):
                await ctx.tick()
            ctx.set(dut.tile_done, 1)
            await ctx.tick()
            ctx.set(dut.tile_done, 0)

    async def registers(ctx):
        # The result registers of the tile being drained: row ``row`` on ``row_data``. And
        # ``row_next`` (what the read-out select is loaded from) must be the next cycle's ``row``.
        async for _, _, drained, row_next in ctx.tick().sample(dut.drained, dut.row_next):
            state["drained"] += drained
            state["row_next_wrong"] += row_next != ctx.get(dut.row)
            t = min(state["drained"], len(tiles) - 1)
            ctx.set(dut.row_data, [int(v) for v in data[t, ctx.get(dut.row)]])

    async def sink(ctx):
        got = await receive(ctx, dut.results, expected_rows, rng, p_stall, max_cycles=2000, convert=lambda v: (
            [ctx.get(v.data[c]) for c in range(config.cols)], ctx.get(v.row_tile),
            ctx.get(v.col_tile), ctx.get(v.rows), ctx.get(v.cols), ctx.get(v.first),
            ctx.get(v.last), ctx.get(v.end)))
        state["got"] = got
        for _ in range(3):
            await ctx.tick()
        state["busy_after"] = ctx.get(dut.busy)

    simulate(dut, sink, sequencer, registers)
    want = [([int(v) for v in data[t, row]], i, j, r, c, row == 0, row == r - 1,
             end and row == r - 1)
            for t, (i, j, r, c, end) in enumerate(tiles) for row in range(r)]
    return state, want


@pytest.mark.parametrize(("rows", "cols", "n", "m"), [(2, 3, 5, 7), (4, 4, 4, 4), (3, 2, 1, 9),
                                                      (1, 1, 3, 2)])
@pytest.mark.parametrize("p_stall", [0.0, 0.6])
def test_drain_sends_each_tiles_rows_in_order(rows, cols, n, m, p_stall):
    config = Config(rows=rows, cols=cols, link_bytes=1, act_depth=64, max_k=32,
                    formats=("int8",), rx_fifo_words=64)
    state, want = run_drain(config, n, m, p_stall, seed=rows * 10 + cols + int(p_stall * 100))
    assert state["got"] == want
    assert state["busy_after"] == 0
    assert state["row_next_wrong"] == 0
