"""The row hold stage alone: order, no loss or repeat under random stalls on both sides, a beat
at least every three cycles when nothing stalls, an ``i.ready`` that does not follow ``o.ready``
within a cycle, and a payload register loaded only when ``i.ready`` (its ``take``) is high."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from test_skid_buffer import run

from systolica.rtl.row_hold import RowHold


@pytest.mark.parametrize(("p_valid", "p_ready"), [(1.0, 1.0), (0.5, 1.0), (1.0, 0.5),
                                                  (0.7, 0.3), (0.3, 0.7)])
def test_row_hold_passes_every_beat_in_order(p_valid, p_ready):
    beats = list(range(1, 201))
    got, cycles, ready_is_registered = run(beats, p_valid, p_ready,
                                           seed=int(p_valid * 10 + p_ready * 100), stage=RowHold)
    assert got == beats
    assert ready_is_registered
    if p_valid == p_ready == 1.0:
        assert 3 * len(beats) - 3 <= cycles <= 3 * len(beats) + 2


def test_row_hold_loads_its_payload_only_when_it_takes_a_beat():
    """The consumer's ready never reaches the payload register: ``o.payload`` changes only in a
    cycle after ``i.ready`` (``take``) was high, never right after a cycle of ``o.ready`` alone
    (a `SkidBuffer` moves its skid entry up then)."""
    dut = RowHold(16)
    changes = []    # (o.payload changed at this tick, i.ready was high before it)

    async def bench(ctx):
        rng = np.random.default_rng(7)
        ctx.set(dut.i.payload, int(rng.integers(1 << 16)))
        previous = ctx.get(dut.o.payload)
        for _ in range(400):
            valid = ctx.get(dut.i.valid) or rng.random() < 0.8    # valid holds until ready
            ctx.set(dut.i.valid, int(valid))
            ctx.set(dut.o.ready, int(rng.random() < 0.3))
            took = bool(ctx.get(dut.i.ready)) and valid
            await ctx.tick()
            if took:
                ctx.set(dut.i.valid, 0)
                ctx.set(dut.i.payload, int(rng.integers(1 << 16)))
            now = ctx.get(dut.o.payload)
            changes.append((now != previous, took))
            previous = now

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert sum(changed for changed, _ in changes) > 20
    assert all(took for changed, took in changes if changed)
