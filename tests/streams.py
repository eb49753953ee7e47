"""Stream sources and sinks for Amaranth testbenches, with random idle cycles and backpressure.

``send`` drives a stream's producer side beat by beat and leaves ``valid`` low for a random
number of cycles between beats; ``receive`` drives the consumer side and holds ``ready`` low at
random. Both follow the stream rules (a beat is held until taken; ``ready`` never waits for
``valid``), so a component that breaks them shows it as lost, repeated or reordered beats. Both
give up with an AssertionError after ``max_cycles`` cycles, so a design that stops moving fails
its test instead of hanging it.
"""

from amaranth.sim import Simulator

__all__ = ["receive", "send", "simulate"]

MAX_CYCLES = 100_000


async def send(ctx, stream, beats, rng=None, p_idle=0.0, max_cycles=MAX_CYCLES):
    """Send ``beats`` (payload values) on ``stream``; returns once the last one is taken."""
    cycles = 0
    for n, beat in enumerate(beats):
        while rng is not None and rng.random() < p_idle:
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.valid, 1)
        ctx.set(stream.payload, beat)
        while True:
            _, _, ready = await ctx.tick().sample(stream.ready)
            cycles += 1
            if ready:
                break
            assert cycles < max_cycles, f"beat {n} of {len(beats)} not taken in {cycles} cycles"
    ctx.set(stream.valid, 0)


async def receive(ctx, stream, count, rng=None, p_stall=0.0, convert=None,
                  max_cycles=MAX_CYCLES):
    """Take ``count`` beats from ``stream`` (each through ``convert`` if given, for example
    ``lambda view: view.data.as_value()``); returns them as a list."""
    got = []
    for cycle in range(max_cycles):  # noqa: B007 (named in the error below)
        if len(got) == count:
            break
        ready = rng is None or rng.random() >= p_stall
        ctx.set(stream.ready, ready)
        _, _, payload, valid = await ctx.tick().sample(stream.payload, stream.valid)
        if ready and valid:
            got.append(payload if convert is None else convert(payload))
    else:
        raise AssertionError(f"{len(got)} of {count} beats in {cycle + 1} cycles")
    ctx.set(stream.ready, 0)
    return got


def simulate(dut, testbench, *background):
    """Run ``testbench`` against ``dut`` on a clock, with ``background`` testbenches beside it
    (they stop when it returns)."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for bench in background:
        sim.add_testbench(bench, background=True)
    sim.add_testbench(testbench)
    sim.run()
