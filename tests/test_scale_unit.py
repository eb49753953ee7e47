# amaranth: UnusedElaboratable=no
"""The scale stage of a group of columns (rtl/scale_unit.py) in Amaranth's simulator against the
block arithmetic of host/block_formats.py, bit for bit."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from block_data import random_halves

from systolica.fp32_model import f16_to_f32, f32_add, f32_mul, int_to_f32
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
    # Per tile and block: the columns' weight scales (dw, mw), the rows' activation scales and
    # sums (dx, s), and every PE's dot product.
    tile_blocks = []
    for _ in range(tiles):
        tile = []
        for _ in range(blocks):
            dw, mw = (random_halves(rng, cols) for _ in range(2))
            tile.append({
                "dw": [int(h) for h in dw], "mw": [int(h) for h in mw],
                "dx": [int(h) for h in random_halves(rng, rows)],
                "s": [int(v) for v in rng.integers(-4064, 4065, rows)],
                "p": rng.integers(-520192, 520193, (rows, cols)).tolist(),
            })
        tile_blocks.append(tile)
    got = []

    async def feed(ctx):
        ctx.set(dut.offset, offset)
        n = 0
        for tile in tile_blocks:
            for b, blk in enumerate(tile):
                # The block's scale set (the other one may still be read for the last block).
                which = n % 2
                n += 1
                ctx.set(dut.block, which)
                ctx.set(dut.first[which], b == 0)
                ctx.set(dut.last[which], b == blocks - 1)
                for g in range(cols):
                    ctx.set(dut.dw[which][g], blk["dw"][g])
                    ctx.set(dut.mw[which][g], blk["mw"][g])
                for r in range(rows):
                    ctx.set(dut.dx[which][r], blk["dx"][r])
                    ctx.set(dut.act_sum[which][r], blk["s"][r])
                for cycle in range(period):
                    for g in range(cols):
                        r = cycle - g
                        ctx.set(dut.valid[g], 0 <= r < rows)
                        if 0 <= r < rows:
                            ctx.set(dut.row[g], r)
                            ctx.set(dut.partial[g], blk["p"][r][g])
                    await ctx.tick()
        await ctx.tick().repeat(dut.latency + rows * cols + 4)

    async def collect(ctx):
        # Each result read as it is written; the banks change as `ScaleStage` changes them.
        bank = 0
        async for _, _, final, row, col in ctx.tick().sample(dut.final, dut.final_row,
                                                              dut.final_col):
            if final:
                ctx.set(dut.out_rd, bank)
                ctx.set(dut.out_row, row)
                got.append(((row, col), ctx.get(dut.out[col])))
                if (row, col) == (rows - 1, cols - 1):
                    bank ^= 1
                    ctx.set(dut.out_wr, bank)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(collect, background=True)
    sim.run()
    per_tile = rows * cols
    assert len(got) == tiles * per_tile
    for t, tile in enumerate(tile_blocks):
        items = {(r, g): [(blk["p"][r][g], blk["s"][r], blk["dw"][g], blk["mw"][g], blk["dx"][r])
                          for blk in tile] for r in range(rows) for g in range(cols)}
        want = expected(items, offset)
        tile = dict(got[t * per_tile:(t + 1) * per_tile])
        assert {k: f"{v:08x}" for k, v in tile.items()} == {k: f"{v:08x}" for k, v in
                                                             want.items()}, f"tile {t}"
    # The last result of a tile is its last row's in the last column (what the engine waits for).
    assert got[per_tile - 1][0] == (rows - 1, cols - 1)


def test_scale_unit_rejects_an_unknown_multiplier():
    with pytest.raises(ValueError, match="multiplier must be one of"):
        ScaleUnit(4, 2, 21, multiplier="dsp")


# (rows, cols): one unit's items of a block fill the 32 cycles between blocks exactly, or not.
BANK_CASES = [(2, 16), (4, 8), (4, 6), (1, 1)]


@pytest.mark.parametrize(("rows", "cols"), BANK_CASES)
def test_each_tile_stays_in_its_bank_until_drained(rows, cols):
    """One-block tiles (K = 32) back to back, ``out_wr`` changed as the scale stage changes it
    (two cycles after a tile's last result), each tile read from its bank a few cycles after
    the next tile's first results were written: nothing of the next tile is in it."""
    dut = ScaleUnit(rows, cols, 21, offset_term=False)
    rng = np.random.default_rng(rows * cols)
    tiles = 5
    blocks = [{"dw": [int(h) for h in random_halves(rng, cols)],
               "dx": [int(h) for h in random_halves(rng, rows)],
               "p": rng.integers(-520192, 520193, (rows, cols)).tolist()} for _ in range(tiles)]
    got = []

    async def feed(ctx):
        for n, blk in enumerate(blocks):
            which = n % 2
            ctx.set(dut.block, which)
            ctx.set(dut.first[which], 1)
            ctx.set(dut.last[which], 1)
            for g in range(cols):
                ctx.set(dut.dw[which][g], blk["dw"][g])
            for r in range(rows):
                ctx.set(dut.dx[which][r], blk["dx"][r])
            for cycle in range(32):
                for g in range(cols):
                    r = cycle - g
                    ctx.set(dut.valid[g], 0 <= r < rows)
                    if 0 <= r < rows:
                        ctx.set(dut.row[g], r)
                        ctx.set(dut.partial[g], blk["p"][r][g])
                await ctx.tick()
        await ctx.tick().repeat(dut.latency + 40)

    async def stage(ctx):
        bank, reads = 0, []        # reads: (cycle due, bank) of finished tiles
        cycle = 0
        async for _, _, final, row, col in ctx.tick().sample(dut.final, dut.final_row,
                                                              dut.final_col):
            cycle += 1
            if final and row == rows - 1 and col == cols - 1:
                reads.append((cycle + 4, bank))
                bank ^= 1
                ctx.set(dut.out_wr, bank)       # a cycle after final, as ScaleStage does
            while reads and reads[0][0] <= cycle:
                _, which = reads.pop(0)
                ctx.set(dut.out_rd, which)
                tile = []
                for r in range(rows):
                    ctx.set(dut.out_row, r)
                    tile.append([ctx.get(dut.out[g]) for g in range(cols)])
                got.append(tile)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(stage, background=True)
    sim.run()
    assert len(got) == tiles
    for t, blk in enumerate(blocks):
        want = [[int(f32_add(np.uint32(0), f32_mul(int_to_f32(blk["p"][r][g]), f32_mul(
            f16_to_f32(blk["dw"][g]), f16_to_f32(blk["dx"][r])))))    # +0 ⊕ t: -0 is +0
                 for g in range(cols)] for r in range(rows)]
        assert got[t] == want, f"tile {t}"
