"""The argmax stage alone: with ``argmax`` a GEMM's one-row results (its column tiles) leave as
one row holding the largest value's column and bits (the first of equal ones; -0 equal to +0),
under random idle and backpressure, GEMM after GEMM; without it every row passes unchanged."""

import numpy as np
import pytest
from streams import receive, send, simulate

from systolica.config import Config
from systolica.fp32_model import f32_order_key
from systolica.rtl.argmax import ArgMax

CFG = Config(rows=2, cols=16, dram_mib=512)


def row_values(rng, m, kind):
    """M binary32 patterns: random numbers of many sizes and both signs, or rows built to tie."""
    bits = (rng.standard_normal(m) * 2.0 ** rng.integers(-30, 30, m)).astype(np.float32)
    bits = bits.view(np.uint32).copy()
    if kind == "tie":                # the largest twice, in two column tiles
        top = np.float32(np.abs(bits.view(np.float32)).max() * 2).view(np.uint32)
        bits[[5, m - 2]] = top
    elif kind == "zeros":            # nothing above zero: -0 first, then +0 (equal: -0 wins)
        bits = np.abs(bits.view(np.float32)).view(np.uint32) | 0x8000_0000
        bits[[3, 7]] = [0x8000_0000, 0]
    elif kind == "inf":
        bits[m // 2] = 0x7F80_0000
    return bits


def beats(cfg, bits):
    """One row a column tile, as the drain sends a one-row GEMM's results."""
    tiles = range(0, len(bits), cfg.cols)
    out = []
    for j, c0 in enumerate(tiles):
        part = [int(b) for b in bits[c0:c0 + cfg.cols]]
        out.append({"data": part + [0] * (cfg.cols - len(part)), "row_tile": 0, "col_tile": j,
                    "rows": 1, "cols": len(part), "first": 1, "last": 1,
                    "end": j == len(tiles) - 1})
    return out


def view(v):
    return {"data": [int(x) & 0xFFFF_FFFF for x in v.data[:2]], "row_tile": v.row_tile,
            "col_tile": v.col_tile, "rows": v.rows, "cols": v.cols, "first": v.first,
            "last": v.last, "end": v.end}


# name: (M of each GEMM in turn, what the values are)
CASES = {
    "one-tile": ([16], "random"),
    "partial-last-tile": ([50, 37], "random"),
    "ties": ([40], "tie"),
    "signed-zeros": ([20], "zeros"),
    "infinity": ([33], "inf"),
}


@pytest.mark.parametrize("name", CASES)
def test_argmax_sends_the_first_largest(name):
    ms, kind = CASES[name]
    rng = np.random.default_rng(len(name))
    gemms = [row_values(rng, m, kind) for m in ms]
    dut = ArgMax(CFG)
    got = []

    async def producer(ctx):
        ctx.set(dut.argmax, 1)
        for bits in gemms:
            await send(ctx, dut.i, beats(CFG, bits), rng, p_idle=0.3)

    async def consumer(ctx):
        got.extend(await receive(ctx, dut.o, len(gemms), rng, p_stall=0.4, convert=view))

    simulate(dut, consumer, producer)
    for bits, row in zip(gemms, got, strict=True):
        keys = f32_order_key(bits)
        column = int(np.argmax(keys))          # numpy's argmax: the first of equal ones
        assert row == {"data": [column, int(bits[column])], "row_tile": 0, "col_tile": 0,
                       "rows": 1, "cols": 2, "first": 1, "last": 1, "end": 1}
    if kind == "tie":
        assert got[0]["data"][0] == 5
    if kind == "zeros":
        assert got[0]["data"] == [3, 0x8000_0000]


def test_without_argmax_rows_pass_unchanged():
    rng = np.random.default_rng(1)
    sent = beats(CFG, row_values(rng, 70, "random"))
    dut = ArgMax(CFG)
    got = []

    async def producer(ctx):
        await send(ctx, dut.i, sent, rng, p_idle=0.3)

    async def consumer(ctx):
        got.extend(await receive(ctx, dut.o, len(sent), rng, p_stall=0.4, convert=lambda v: {
            "data": [int(x) & 0xFFFF_FFFF for x in v.data], "col_tile": v.col_tile,
            "cols": v.cols, "end": v.end}))

    simulate(dut, consumer, producer)
    assert got == [{"data": b["data"], "col_tile": b["col_tile"], "cols": b["cols"],
                    "end": b["end"]} for b in sent]
