"""The skid buffer alone: order, no loss or repeat under random stalls on both sides, full rate
when nothing stalls, and an ``i.ready`` that does not follow ``o.ready`` within a cycle."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolica.rtl.skid_buffer import SkidBuffer


def run(beats, p_valid, p_ready, seed, stage=SkidBuffer):
    """Passes ``beats`` through a ``stage`` under random stalls on both sides: the beats that came
    out, the cycles it took, and whether ``i.ready`` never followed ``o.ready`` in a cycle."""
    rng = np.random.default_rng(seed)
    dut = stage(16)
    got, cycles, comb_ready = [], [0], []

    async def producer(ctx):
        for beat in beats:
            while rng.random() >= p_valid:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, beat)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        while len(got) < len(beats):
            ready = rng.random() < p_ready
            before = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, ready)
            comb_ready.append(before == ctx.get(dut.i.ready))
            if ready and ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()
            cycles[0] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    return got, cycles[0], all(comb_ready)


@pytest.mark.parametrize(("p_valid", "p_ready"), [(1.0, 1.0), (0.5, 1.0), (1.0, 0.5),
                                                  (0.7, 0.3), (0.3, 0.7)])
def test_skid_buffer_passes_every_beat_in_order(p_valid, p_ready):
    beats = list(range(1, 301))
    got, cycles, ready_is_registered = run(beats, p_valid, p_ready, seed=int(p_valid * 10 +
                                                                           p_ready * 100))
    assert got == beats
    assert ready_is_registered
    if p_valid == p_ready == 1.0:
        assert cycles <= len(beats) + 2        # one beat per cycle after a cycle of latency
