# amaranth: UnusedElaboratable=no
"""The scale stage of a group of columns (rtl/scale_unit.py) in Amaranth's simulator against the
block arithmetic of host/block_formats.py, bit for bit."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from block_data import random_halves

from systolica.rtl.fp32_model import f16_to_f32, f32_add, f32_mul, int_to_f32
from systolica.rtl.scale_unit import ScaleUnit


def expected(items, offset):
    """Per (row, column), the documented fold over blocks (fp32_model)."""
    out = {}
    for key, blocks in items.items():
        acc = np.uint32(0)
        for p, s, dw, mw, dx in blocks:
            t = f32_mul(int_to_f32(p), f32_mul(f16_to_f32(dw), f16_to_f32(dx)))
            acc = f32_add(acc, t)
            if offset:
                v = f32_mul(f32_mul(f16_to_f32(mw), f16_to_f32(dx)), int_to_f32(s))
                acc = f32_add(acc, v)
        out[key] = int(acc)
    return out


# (rows, cols, offset, tiles, blocks, period, multiplier): items of column g, row r arrive
# g + r cycles into their block, as the array delivers them; blocks start `period` cycles apart
# (None: as close as the unit allows). rows × cols = 32 with period 32 leaves the shared datapath
# no idle cycle at all.
CASES = [
    (1, 1, True, 2, 3, None, "infer"),
    (4, 1, True, 3, 4, 32, "infer"),
    (8, 1, False, 2, 5, None, "infer"),
    (8, 1, True, 2, 6, None, "infer"),
    (3, 1, True, 2, 2, 40, "infer"),
    (8, 1, True, 2, 6, None, "lut"),
    (4, 1, False, 2, 3, 32, "lut"),
    (4, 4, True, 3, 4, None, "infer"),
    (8, 4, True, 2, 4, 32, "mixed"),
    (4, 6, True, 2, 3, 32, "lut"),
    (2, 3, False, 3, 3, None, "infer"),
    (8, 16, True, 2, 3, 132, "lut"),    # the 8x16 ECP5 boards: one unit for 16 columns
]


@pytest.mark.parametrize(("rows", "cols", "offset", "tiles", "blocks", "period", "multiplier"),
                         CASES)
def test_scale_unit_matches_model(rows, cols, offset, tiles, blocks, period, multiplier):
    dut = ScaleUnit(rows, cols, 21, offset_term=True, multiplier=multiplier)
    period = period or max(dut.min_spacing, rows + cols - 1, rows * cols + 1)
    assert period >= rows + cols - 1 and period >= rows * cols
    rng = np.random.default_rng(rows * 100 + cols * 10 + blocks)
    tile_items = []
    for _ in range(tiles):
        items = {(r, g): [] for r in range(rows) for g in range(cols)}
        for _ in range(blocks):
            for key in items:
                items[key].append((int(rng.integers(-520192, 520193)),
                                   int(rng.integers(-4064, 4065)),
                                   *(int(h) for h in random_halves(rng, 3))))
        tile_items.append(items)
    got = []

    async def feed(ctx):
        ctx.set(dut.offset, offset)
        for items in tile_items:
            for b in range(blocks):
                ctx.set(dut.first, b == 0)
                ctx.set(dut.last, b == blocks - 1)
                for cycle in range(period):
                    for g in range(cols):
                        r = cycle - g
                        ctx.set(dut.valid[g], 0 <= r < rows)
                        if 0 <= r < rows:
                            p, s, dw, mw, dx = items[(r, g)][b]
                            ctx.set(dut.row[g], r)
                            ctx.set(dut.partial[g], p)
                            ctx.set(dut.act_sum[g], s)
                            ctx.set(dut.dw[g], dw)
                            ctx.set(dut.mw[g], mw)
                            ctx.set(dut.dx[g], dx)
                    await ctx.tick()
        await ctx.tick().repeat(dut.latency + rows * cols + 4)

    async def collect(ctx):
        async for _, _, final, row, col in ctx.tick().sample(dut.final, dut.final_row,
                                                              dut.final_col):
            if final:
                ctx.set(dut.out_row, row)
                got.append(((row, col), ctx.get(dut.out[col])))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(collect, background=True)
    sim.run()
    per_tile = rows * cols
    assert len(got) == tiles * per_tile
    for t, items in enumerate(tile_items):
        want = expected(items, offset)
        tile = dict(got[t * per_tile:(t + 1) * per_tile])
        assert {k: f"{v:08x}" for k, v in tile.items()} == {k: f"{v:08x}" for k, v in
                                                             want.items()}, f"tile {t}"
    # The last result of a tile is its last row's in the last column (what the engine waits for).
    assert got[per_tile - 1][0] == (rows - 1, cols - 1)


def test_scale_unit_rejects_an_unknown_multiplier():
    with pytest.raises(ValueError, match="multiplier must be one of"):
        ScaleUnit(4, 2, 21, multiplier="dsp")
