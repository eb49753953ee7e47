"""The systolic array alone, in Amaranth's simulator: tiles back to back, with and without
bubbles, on several shapes, against numpy."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolica.rtl.array import SystolicArray
from systolica.rtl.pe import PE


def run_tiles(rows, cols, tiles, bubble_rate, seed=0, multiplier="infer", copies=1):
    """Each tile's results as read out: with ``copies`` copies of the row select, copy ``i``
    is given row ``(r + i) % rows`` at the same time, so each copy must choose its own columns'
    row."""
    rng = np.random.default_rng(seed)
    dut = SystolicArray(rows, cols, multiplier=multiplier, select_copies=copies)
    bits = (rows - 1).bit_length()
    results = []

    async def testbench(ctx):
        for a, w in tiles:
            k_len = a.shape[1]
            for k in range(k_len):
                while rng.random() < bubble_rate:
                    ctx.set(dut.ctrl.valid, 0)
                    await ctx.tick()
                for r in range(rows):
                    ctx.set(dut.act[r], int(a[r, k]))
                for c in range(cols):
                    ctx.set(dut.wgt[c], int(w[k, c]))
                ctx.set(dut.ctrl, {"valid": 1, "last": k == k_len - 1})
                await ctx.tick()
            ctx.set(dut.ctrl.valid, 0)
            await ctx.tick().until(dut.done)
            block = np.zeros((rows, cols), dtype=np.int64)
            for r in range(rows):
                chosen = [(r + i) % rows for i in range(copies)]
                ctx.set(dut.row_sel, sum(row << (i * bits) for i, row in enumerate(chosen)))
                for c in range(cols):
                    block[chosen[c * copies // cols], c] = ctx.get(dut.row[c])
            results.append(block)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return results


@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (2, 3), (4, 4), (3, 1)])
@pytest.mark.parametrize("bubble_rate", [0.0, 0.4])
def test_array_tiles_match_numpy(rows, cols, bubble_rate):
    rng = np.random.default_rng(rows * 10 + cols)
    tiles = [(rng.integers(-128, 128, (rows, k)), rng.integers(-128, 128, (k, cols)))
             for k in (1, 5, 9)]
    tiles.append((np.full((rows, 33), -128), np.full((33, cols), -128)))
    got = run_tiles(rows, cols, tiles, bubble_rate)
    for (a, w), block in zip(tiles, got, strict=True):
        np.testing.assert_array_equal(block, a.astype(np.int64) @ w)


@pytest.mark.parametrize(("rows", "cols", "copies"), [(3, 4, 2), (4, 4, 4), (2, 6, 3), (1, 2, 2)])
def test_readout_copies_each_choose_their_columns_row(rows, cols, copies):
    """`Config.readout_copies`: each copy of the read-out row select chooses the row of its
    own ``cols / copies`` columns, whatever the other copies say."""
    rng = np.random.default_rng(rows * 100 + cols * 10 + copies)
    tiles = [(rng.integers(-128, 128, (rows, k)), rng.integers(-128, 128, (k, cols)))
             for k in (1, 7)]
    got = run_tiles(rows, cols, tiles, 0.2, copies=copies)
    for (a, w), block in zip(tiles, got, strict=True):
        np.testing.assert_array_equal(block, a.astype(np.int64) @ w)


@pytest.mark.parametrize("multiplier", ["infer", "lut"])
def test_pe_products_and_sums(multiplier):
    """One PE, each step its own one-step tile: every edge pair and random pairs, both multiplier
    kinds (the iCE40 has too few DSPs, so some PEs build theirs from LUTs)."""
    edges = [-128, -127, -64, -1, 0, 1, 63, 127]
    rng = np.random.default_rng(1)
    pairs = [(a, w) for a in edges for w in edges] + [tuple(p) for p in
                                                      rng.integers(-128, 128, (300, 2))]
    dut = PE(multiplier=multiplier)
    got = []

    async def testbench(ctx):
        for a, w in pairs:
            ctx.set(dut.a_in, int(a))
            ctx.set(dut.w_in, int(w))
            ctx.set(dut.ctrl_in, {"valid": 1, "last": 1})
            await ctx.tick()
            ctx.set(dut.ctrl_in.valid, 0)
            await ctx.tick().until(dut.done)
            got.append(ctx.get(dut.result))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert got == [int(a) * int(w) for a, w in pairs]


@pytest.mark.parametrize("multiplier", ["lut", "pairs", "registered", "registered-fabric"])
def test_multiplier_kinds_in_an_array(multiplier):
    """2×3 = 6 PEs: "pairs" gives three shared PairMultipliers; 3×1 leaves one PE unpaired."""
    rng = np.random.default_rng(len(multiplier))
    tiles = [(rng.integers(-128, 128, (2, k)), rng.integers(-128, 128, (k, 3))) for k in (1, 7)]
    tiles.append((np.full((2, 9), -128), np.full((9, 3), -128)))
    got = run_tiles(2, 3, tiles, 0.2, multiplier=multiplier)
    for (a, w), block in zip(tiles, got, strict=True):
        np.testing.assert_array_equal(block, a.astype(np.int64) @ w)
    tiles = [(rng.integers(-128, 128, (3, 5)), rng.integers(-128, 128, (5, 1)))]
    got = run_tiles(3, 1, tiles, 0.0, multiplier=multiplier)
    for (a, w), block in zip(tiles, got, strict=True):
        np.testing.assert_array_equal(block, a.astype(np.int64) @ w)


@pytest.mark.parametrize("multiplier", ["infer", "lut"])
def test_pe_tiles_back_to_back(multiplier):
    """Tiles of random length (1..4 steps) with no gap between them: each tile's sum starts from
    zero right after the previous tile's ``last`` step cleared the accumulator."""
    rng = np.random.default_rng(7)
    tiles = [rng.integers(-128, 128, (int(rng.integers(1, 5)), 2)) for _ in range(60)]
    dut = PE(multiplier=multiplier)
    got = []

    async def collect(ctx):
        async for _clk, _rst, done, result in ctx.tick().sample(dut.done, dut.result):
            if done:
                got.append(result)

    async def feed(ctx):
        for tile in tiles:
            for k, (a, w) in enumerate(tile):
                ctx.set(dut.a_in, int(a))
                ctx.set(dut.w_in, int(w))
                ctx.set(dut.ctrl_in, {"valid": 1, "last": k == len(tile) - 1})
                await ctx.tick()
        ctx.set(dut.ctrl_in.valid, 0)
        await ctx.tick().repeat(4)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_process(collect)
    sim.add_testbench(feed)
    sim.run()
    assert got == [int(np.sum(t[:, 0].astype(np.int64) * t[:, 1])) for t in tiles]
