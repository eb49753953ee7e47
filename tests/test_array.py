"""The systolic array alone, in Amaranth's simulator: tiles back to back, with and without
bubbles, on several shapes, against numpy."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolica.rtl.array import SystolicArray


def run_tiles(rows, cols, tiles, bubble_rate, seed=0):
    rng = np.random.default_rng(seed)
    dut = SystolicArray(rows, cols)
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
                ctx.set(dut.ctrl, {"valid": 1, "first": k == 0, "last": k == k_len - 1})
                await ctx.tick()
            ctx.set(dut.ctrl.valid, 0)
            await ctx.tick().until(dut.done)
            block = np.zeros((rows, cols), dtype=np.int64)
            for r in range(rows):
                ctx.set(dut.row_sel, r)
                block[r] = [ctx.get(dut.row[c]) for c in range(cols)]
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
