"""The scale stage of one column (rtl/scale_column.py) in Amaranth's simulator against the
block arithmetic of host/block_formats.py, bit for bit."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from block_data import random_halves

from systolica.rtl.fp32_model import f16_to_f32, f32_add, f32_mul, int_to_f32
from systolica.rtl.scale_column import ScaleColumn


def expected(items, offset):
    """Per row, the documented fold over blocks (fp32_model)."""
    out = {}
    for r, blocks in items.items():
        acc = np.uint32(0)
        for p, s, dw, mw, dx in blocks:
            t = f32_mul(int_to_f32(p), f32_mul(f16_to_f32(dw), f16_to_f32(dx)))
            acc = f32_add(acc, t)
            if offset:
                v = f32_mul(f32_mul(f16_to_f32(mw), f16_to_f32(dx)), int_to_f32(s))
                acc = f32_add(acc, v)
        out[r] = int(acc)
    return out


@pytest.mark.parametrize(("rows", "offset", "tiles", "blocks", "spacing"), [
    (1, True, 2, 3, None),
    (4, True, 3, 4, 32),
    (8, False, 2, 5, None),
    (8, True, 2, 6, None),
    (3, True, 2, 2, 40),
])
def test_scale_column_matches_model(rows, offset, tiles, blocks, spacing):
    dut = ScaleColumn(rows, 21, offset_term=True)
    gap = spacing or dut.min_spacing
    assert gap >= rows
    rng = np.random.default_rng(rows * 10 + blocks)
    tile_items = []
    for _ in range(tiles):
        items = {r: [] for r in range(rows)}
        for _ in range(blocks):
            for r in range(rows):
                items[r].append((int(rng.integers(-520192, 520193)),
                                 int(rng.integers(-4064, 4065)),
                                 *(int(h) for h in random_halves(rng, 3))))
        tile_items.append(items)
    got = []

    async def feed(ctx):
        ctx.set(dut.offset, offset)
        for items in tile_items:
            for b in range(blocks):
                for r in range(rows):
                    p, s, dw, mw, dx = items[r][b]
                    ctx.set(dut.valid, 1)
                    ctx.set(dut.row, r)
                    ctx.set(dut.partial, p)
                    ctx.set(dut.act_sum, s)
                    ctx.set(dut.dw, dw)
                    ctx.set(dut.mw, mw)
                    ctx.set(dut.dx, dx)
                    ctx.set(dut.first, b == 0)
                    ctx.set(dut.last, b == blocks - 1)
                    await ctx.tick()
                ctx.set(dut.valid, 0)
                await ctx.tick().repeat(gap - rows)
        await ctx.tick().repeat(dut.latency + 4)

    async def collect(ctx):
        async for _, _, final, row in ctx.tick().sample(dut.final, dut.final_row):
            if final:
                ctx.set(dut.out_row, row)
                got.append((row, ctx.get(dut.out)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(collect, background=True)
    sim.run()
    want = [(r, expected(items, offset)[r]) for items in tile_items for r in range(rows)]
    assert [(r, f"{v:08x}") for r, v in got] == [(r, f"{v:08x}") for r, v in want]
