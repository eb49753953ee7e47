"""The sequencer alone, against a model of the weight banks and the drain: every step of a GEMM
in order (weight tile j, row tile i, k), only from a full bank, each bank released once, each
tile's `TileMeta` with its last step, and no tile's last step before there is room for it."""

import numpy as np
import pytest
from streams import simulate
from test_drain import tiles_of

from systolica.config import Config
from systolica.rtl.sequencer import Sequencer


def run_sequencer(config, n, k, m, latency, seed):
    rng = np.random.default_rng(seed)
    dut = Sequencer(config, latency)
    tj = -(-m // config.cols)
    trace = []          # per cycle: (r_bank, r_k, act_addr, step valid, step last, bank full)
    events = {"tiles": [], "releases": [], "max_pending": 0}

    async def bench(ctx):
        ctx.set(dut.n, n)
        ctx.set(dut.k, k)
        ctx.set(dut.k_last, k - 1)
        ctx.set(dut.m, m)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        full = [False, False]
        fill_at = {0: 3, 1: 9 if tj > 1 else None}    # the loader fills bank 0, then bank 1
        loaded = min(tj, 2)
        drains = []         # cycles at which the issued tiles' results have left
        issued_tiles = drained_tiles = 0
        for cycle in range(50 * n * k * tj + 200):
            for b in (0, 1):
                if fill_at[b] is not None and cycle >= fill_at[b]:
                    full[b], fill_at[b] = True, None
            drained = bool(drains) and cycle >= drains[0]
            if drained:
                drains.pop(0)
                drained_tiles += 1
            ctx.set(dut.bank_full, full[0] | full[1] << 1)
            ctx.set(dut.drained, drained)
            trace.append((ctx.get(dut.r_bank), ctx.get(dut.r_k), ctx.get(dut.act_addr),
                          ctx.get(dut.step.valid), ctx.get(dut.step.last), tuple(full)))
            release = ctx.get(dut.release)
            if ctx.get(dut.tiles.valid):
                t = ctx.get(dut.tiles.payload)
                events["tiles"].append((t.row_tile, t.col_tile, t.rows, t.cols, bool(t.end)))
                issued_tiles += 1
                drains.append(max([cycle, *drains]) + int(rng.integers(1, 12)))
            events["max_pending"] = max(events["max_pending"], issued_tiles - drained_tiles)
            await ctx.tick()
            for b in (0, 1):
                if release >> b & 1:
                    events["releases"].append(b)
                    full[b] = False
                    if loaded < tj:
                        fill_at[b] = cycle + 1 + int(rng.integers(0, 20))
                        loaded += 1

    simulate(dut, bench)
    # A step issued in cycle c reads (r_bank, r_k) then, act_addr a cycle later, and shows on
    # ``step`` `latency` cycles after that.
    steps = []
    for c, (*_, valid, last, _) in enumerate(trace):
        if valid:
            t = c - latency - 1
            bank, kk, _, _, _, full = trace[t]
            steps.append((bank, kk, trace[t + 1][2], bool(last), full[bank]))
    return steps, events


@pytest.mark.parametrize(("rows", "cols", "n", "k", "m"), [(2, 3, 5, 4, 7), (4, 4, 4, 1, 4),
                                                           (3, 2, 1, 6, 9), (2, 2, 6, 3, 2)])
@pytest.mark.parametrize("latency", [1, 2])
def test_sequencer_issues_every_step_in_order(rows, cols, n, k, m, latency):
    config = Config(rows=rows, cols=cols, link_bytes=1, act_depth=64, max_k=32,
                    formats=("int8",), rx_fifo_words=64)
    steps, events = run_sequencer(config, n, k, m, latency, seed=n * 100 + k * 10 + m)
    ti, tj = -(-n // rows), -(-m // cols)
    want = [(j % 2, kk, i * k + kk, kk == k - 1, True)
            for j in range(tj) for i in range(ti) for kk in range(k)]
    assert steps == want
    assert events["tiles"] == tiles_of(n, m, rows, cols)
    assert events["releases"] == [j % 2 for j in range(tj)]
    assert events["max_pending"] <= 1          # the array's result registers hold one tile
