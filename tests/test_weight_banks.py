"""The weight banks alone: tiles written from a stream with random gaps land in bank 0, 1, 0 ...;
a bank is flagged full with its tile's last row (or block group) and read back exactly (int8
rows, or a block format's lane weights and scales), and the loader waits for a full bank's
release before writing it again."""

import numpy as np
import pytest
from streams import send, simulate

from systolica.config import Config
from systolica.rtl.weight_banks import WeightBanks


def int8_tiles(rng, tiles, k, cols):
    return rng.integers(-128, 128, size=(tiles, k, cols))


def block_beats(tile, cp):
    """A tile (K x C weights) as the unpacker sends it: per 32-block group, one block a lane,
    with made-up scale patterns that say which block they belong to."""
    k = tile.shape[0]
    beats = []
    for g in range(k // 32):
        for lane in range(cp):
            beats.append({"lane": lane, "d": 0x1000 + 64 * g + lane, "m": 0x2000 + 64 * g + lane,
                          "q": [int(v) for v in tile[32 * g:32 * g + 32, lane]],
                          "bad_scale": 0, "group_last": int(lane == cp - 1)})
    return beats


def run_banks(config, tiles, wmode, seed, p_idle=0.4):
    rng = np.random.default_rng(seed)
    dut = WeightBanks(config)
    n_tiles, k, cols = tiles.shape
    got = {"rows": [], "scales": []}

    async def loader(ctx):
        ctx.set(dut.k_last, k - 1)
        ctx.set(dut.wmode, wmode)
        ctx.set(dut.gemm_start, 1)
        await ctx.tick()
        ctx.set(dut.gemm_start, 0)
        await ctx.tick()            # wmode is set a cycle after gemm_start in the engine
        for tile in tiles:
            if wmode:
                await send(ctx, dut.blocks, block_beats(tile, cols), rng, p_idle)
            else:
                await send(ctx, dut.wgt, [[int(v) for v in row] for row in tile], rng, p_idle)

    async def reader(ctx):
        # The sequencer's part: read each full bank's rows in order, then release it.
        for t in range(n_tiles):
            bank = t % 2
            while not ctx.get(dut.full) >> bank & 1:
                await ctx.tick()
            rows = []
            for kk in range(k + dut.latency):
                if kk < k:
                    ctx.set(dut.r_bank, bank)
                    ctx.set(dut.r_k, kk)
                    if wmode and kk % 32 == 0:
                        ctx.set(dut.scale_addr, bank * (config.max_k // 32) + kk // 32)
                await ctx.tick()
                if wmode and kk % 32 == 0 and kk < k:
                    scales = ctx.get(dut.scale_data)
                    got["scales"].append([(s.dw, s.mw) for s in scales])
                if kk + 1 >= dut.latency:
                    rows.append([ctx.get(dut.r_data[c]) for c in range(cols)])
            got["rows"].append(rows[:k])
            ctx.set(dut.release, 1 << bank)
            await ctx.tick()
            ctx.set(dut.release, 0)

    simulate(dut, reader, loader)
    return got


CONFIGS = {
    "4-int8": Config(rows=2, cols=4, link_bytes=1, act_depth=64, max_k=64, formats=("int8",),
                     rx_fifo_words=64),
    "3-int8-pieces": Config(rows=2, cols=3, link_bytes=1, act_depth=64, max_k=64,
                            formats=("int8",), rx_fifo_words=64, buffer_piece_depth=32),
    "4-blocks": Config(rows=2, cols=4, link_bytes=1, act_depth=64, max_k=64, rx_fifo_words=64,
                       lane_weights=8),
    "2-blocks-pieces": Config(rows=2, cols=2, link_bytes=1, act_depth=64, max_k=64,
                              rx_fifo_words=64, lane_weights=16, buffer_piece_depth=32),
}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("k", [32, 64])
def test_weight_banks_hold_each_tile_until_released(name, k):
    config = CONFIGS[name]
    wmode = bool(config.block_formats)
    rng = np.random.default_rng(k)
    tiles = int8_tiles(rng, 5, k, config.cols)
    got = run_banks(config, tiles, wmode, seed=k)
    assert np.array_equal(np.array(got["rows"]), tiles)
    if wmode:
        want = [[(0x1000 + 64 * g + c, 0x2000 + 64 * g + c) for c in range(config.cols)]
                for _ in range(len(tiles)) for g in range(k // 32)]
        assert got["scales"] == want
