"""The reply framer alone: a decoder reply (IDENTIFY with its payload), a GEMM's result rows
arriving with random gaps, a CREDIT frame asked for in the middle, and the GEMM reply with its
cycle count, sent as link words under random backpressure and read back by the host's own
frame reader."""

import numpy as np
import pytest
from streams import receive, send, simulate
from test_drain import tiles_of

from systolica.config import Config
from systolica.host.frames import FrameReader
from systolica.protocol import REPLY, Op
from systolica.rtl.framer import Framer


def result_rows(rng, config, n, m):
    """The result rows of an N x M GEMM as the drain sends them, with random int32 data."""
    rows = []
    for i, j, r, c, end in tiles_of(n, m, config.rows, config.cols):
        for row in range(r):
            data = [int(v) for v in rng.integers(-2**31, 2**31, size=config.cols)]
            rows.append({"data": data, "row_tile": i, "col_tile": j, "rows": r, "cols": c,
                         "first": row == 0, "last": row == r - 1, "end": end and row == r - 1})
    return rows


def run_framer(config, n, m, seed, p_idle=0.3, p_stall=0.3):
    rng = np.random.default_rng(seed)
    dut = Framer(config)
    identify = config.identify_payload()
    rows = result_rows(rng, config, n, m)
    seen = {"busy_during": [], "cycles": None, "credit_sent": 0}

    async def decoder(ctx):
        await send(ctx, dut.reply, [{"op": Op.IDENTIFY | REPLY, "status": 0,
                                     "arg0": len(identify), "arg1": config.link_bytes,
                                     "arg2": 1234}])
        ctx.set(dut.control.m, m)
        ctx.set(dut.control.gemm_start, 1)
        await ctx.tick()
        ctx.set(dut.control.gemm_start, 0)
        start = 0
        for _ in range(40):              # the engine is computing: no rows yet
            seen["busy_during"].append(ctx.get(dut.busy))
            await ctx.tick()
            start += 1
        await send(ctx, dut.results, rows, rng, p_idle)
        seen["cycles"] = start + 1       # + the send's cycles, counted below

    async def credit(ctx):
        for _ in range(60):
            await ctx.tick()
        ctx.set(dut.credit.consumed, 0xBEEF)
        ctx.set(dut.credit.credit_due, 1)
        while not ctx.get(dut.credit.credit_sent):
            await ctx.tick()
        seen["credit_sent"] += 1
        await ctx.tick()
        ctx.set(dut.credit.credit_due, 0)

    reader = FrameReader(config.link_bytes)
    frames = []

    async def host(ctx):
        while not frames or frames[-1].op != Op.GEMM:
            words = await receive(ctx, dut.tx, 1, rng, p_stall, max_cycles=5000)
            reader.feed(int(words[0]).to_bytes(config.link_bytes, "little"))
            frames.extend(reader.frames())
        for _ in range(3):
            await ctx.tick()
        seen["busy_after"] = ctx.get(dut.busy)

    simulate(dut, host, decoder, credit)
    return frames, rows, identify, seen


@pytest.mark.parametrize(("rows", "cols", "link_bytes", "n", "m"),
                         [(2, 3, 1, 3, 5), (4, 4, 4, 4, 8), (2, 2, 16, 3, 3)])
def test_framer_sends_replies_rows_credit_and_the_gemm_reply(rows, cols, link_bytes, n, m):
    config = Config(rows=rows, cols=cols, link_bytes=link_bytes, act_depth=64, max_k=32,
                    formats=("int8",), rx_fifo_words=64)
    frames, sent, identify, seen = run_framer(config, n, m, seed=rows * cols + link_bytes)
    assert frames[0].op == Op.IDENTIFY and frames[0].payload == identify
    assert frames[0].args == (len(identify), link_bytes, 1234)
    credit = [f for f in frames if f.op == Op.CREDIT]
    assert len(credit) == 1 and credit[0].args[0] == 0xBEEF and seen["credit_sent"] == 1
    results = [f for f in frames if f.op == Op.RESULT]
    tiles = tiles_of(n, m, rows, cols)
    assert [(f.args[0], f.args[1], f.args[2] & 0xFFFF, f.args[2] >> 16) for f in results] == \
        [t[:4] for t in tiles]
    got = [list(row[:f.args[2] >> 16]) for f in results
           for row in np.frombuffer(f.payload, dtype="<i4").reshape(f.args[2] & 0xFFFF, -1)]
    assert got == [row["data"][:row["cols"]] for row in sent]
    padding = [row[f.args[2] >> 16:] for f in results
               for row in np.frombuffer(f.payload, dtype="<i4").reshape(f.args[2] & 0xFFFF, -1)]
    assert not any(p.any() for p in padding)        # a partial row's last word: zeros after it
    gemm = frames[-1]
    assert gemm.status == 0 and gemm.args[2] == m
    assert gemm.args[0] > seen["cycles"]          # counted from gemm_start to the last row
    assert all(seen["busy_during"]) and seen["busy_after"] == 0
