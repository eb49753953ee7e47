"""The pair-sum stage alone: with ``pair`` each two result rows leave as one row of binary32 sums
(`fp32_model.f32_add`, bit for bit) with the tile's fields halved, in order under random idle
and backpressure; without it every row passes unchanged."""

import numpy as np
import pytest
from streams import receive, send, simulate

from systolica.config import Config
from systolica.fp32_model import f32_add
from systolica.rtl.pair_sum import PairSum

CONFIGS = {"2x16": Config(rows=2, cols=16, dram_mib=512, link_bytes=16),
           "4x4": Config(rows=4, cols=4, dram_mib=512, link_bytes=16)}


def binary32_rows(rng, count, cols):
    """Rows of binary32 patterns as the scale stage makes them: normal numbers of many sizes and
    both signs, zeros, and pairs that cancel or nearly cancel (a sum flushed or exact)."""
    values = rng.standard_normal((count, cols)) * 2.0 ** rng.integers(-60, 60, (count, cols))
    bits = values.astype(np.float32).view(np.uint32)
    bits[rng.random((count, cols)) < 0.05] = 0
    for t in range(0, count - 1, 2):           # some columns cancel, some leave 2**-127-ish
        c = rng.integers(cols)
        bits[t + 1, c] = bits[t, c] ^ 0x8000_0000
        c = rng.integers(cols)
        small = np.float32(2.0 ** -125)
        bits[t, c], bits[t + 1, c] = np.array([small, -small * np.float32(0.75)],
                                              dtype=np.float32).view(np.uint32)
    return bits


def tile_rows(cfg, bits, rows_per_tile):
    """``ResultRow`` beats of ``bits`` in tiles of ``rows_per_tile`` rows (the last GEMM's)."""
    beats = []
    for r, row in enumerate(bits):
        in_tile = r % rows_per_tile
        beats.append({"data": [int(x) for x in row], "row_tile": r // rows_per_tile,
                      "col_tile": 3, "rows": rows_per_tile, "cols": cfg.cols - 1,
                      "first": in_tile == 0, "last": in_tile == rows_per_tile - 1,
                      "end": r == len(bits) - 1})
    return beats


def run(cfg, beats, pair, seed):
    dut = PairSum(cfg)
    rng = np.random.default_rng(seed)
    count = len(beats) // 2 if pair else len(beats)
    got = []

    async def producer(ctx):
        ctx.set(dut.pair, pair)
        await send(ctx, dut.i, beats, rng, p_idle=0.3)

    async def consumer(ctx):
        got.extend(await receive(ctx, dut.o, count, rng, p_stall=0.4, convert=lambda v: {
            "data": [int(x) & 0xFFFF_FFFF for x in v.data], "row_tile": v.row_tile,
            "col_tile": v.col_tile, "rows": v.rows, "cols": v.cols, "first": v.first,
            "last": v.last, "end": v.end}))

    simulate(dut, consumer, producer)
    return got


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("pair", [True, False])
def test_pair_sum(name, pair):
    cfg = CONFIGS[name]
    rng = np.random.default_rng(len(name) + pair)
    bits = binary32_rows(rng, 4 * cfg.rows, cfg.cols)
    beats = tile_rows(cfg, bits, cfg.rows)
    got = run(cfg, beats, pair, seed=3)
    if not pair:
        want = [{**b, "data": b["data"]} for b in beats]
        assert got == want
        return
    sums = f32_add(bits[0::2], bits[1::2])
    half = cfg.rows // 2
    assert [g["data"] for g in got] == sums.tolist()
    for t, g in enumerate(got):
        second = beats[2 * t + 1]
        assert (g["row_tile"], g["col_tile"], g["rows"], g["cols"]) == (
            second["row_tile"], 3, half, cfg.cols - 1)
        assert (g["first"], g["last"], g["end"]) == (
            beats[2 * t]["first"], second["last"], second["end"])


def test_pair_sum_refuses_odd_rows():
    with pytest.raises(ValueError, match="even number of rows"):
        PairSum(Config(rows=3, cols=4))
