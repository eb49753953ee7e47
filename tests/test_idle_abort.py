"""The idle abort alone: when it fires (and when not), and the made-up words of an aborted
payload."""

import pytest
from streams import simulate

from systolica.config import Config
from systolica.rtl.idle_abort import IdleAbort

LIMIT = 50


def run(schedule, cycles):
    """Drive ``schedule(cycle) -> (idle, ready, valid, routing, start)`` for ``cycles`` cycles;
    returns the cycles where ``abort`` was high and the (o.valid, aborted) of every cycle."""
    dut = IdleAbort(Config(rows=1, cols=1, link_bytes=1, act_depth=64, max_k=32,
                           formats=("int8",), rx_fifo_words=64, abort_cycles=LIMIT))
    aborts, seen = [], []

    async def bench(ctx):
        for cycle in range(cycles):
            idle, ready, valid, routing, start = schedule(cycle)
            ctx.set(dut.idle, idle)
            ctx.set(dut.o.ready, ready)
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.routing, routing)
            ctx.set(dut.start, start)
            _, _, abort, o_valid, aborted = await ctx.tick().sample(dut.abort, dut.o.valid,
                                                                     dut.aborted)
            if abort:
                aborts.append(cycle)
            seen.append((o_valid, aborted))

    simulate(dut, bench)
    return aborts, seen


CASES = {
    # (schedule, cycles, the cycles where abort is expected)
    "idle decoder: never": (lambda c: (1, 1, 0, 0, 0), 300, []),
    # (the waiting is registered: the strobe comes a cycle after the LIMIT-th cycle of it)
    "waiting, nothing comes: every LIMIT cycles": (lambda c: (0, 1, 0, 0, 0), 160,
                                                   [LIMIT + 1, 2 * LIMIT + 1, 3 * LIMIT + 1]),
    "a word now and then: never": (lambda c: (0, 1, c % (LIMIT - 5) == 0, 0, 0), 400, []),
    "not ready (the decoder is busy): never": (lambda c: (0, 0, 0, 0, 0), 300, []),
    "a word just too late": (lambda c: (0, 1, c == LIMIT + 3, 0, 0), 80, [LIMIT + 1]),
    "a word just in time": (lambda c: (0, 1, c == LIMIT - 1, 0, 0), 80, []),
}


@pytest.mark.parametrize("name", CASES)
def test_idle_abort_fires_after_abort_cycles_of_waiting(name):
    schedule, cycles, want = CASES[name]
    aborts, _ = run(schedule, cycles)
    assert aborts == want


def test_an_aborted_payload_is_made_up_until_the_router_is_done():
    done = LIMIT + 30              # the router has taken the made-up rest by then

    def schedule(c):
        routing = c < done
        return 0 if routing else 1, 1, 0, routing, c == done + 10   # then a new command

    aborts, seen = run(schedule, done + 20)
    assert aborts == [LIMIT + 1]
    o_valid = [v for v, _ in seen]
    aborted = [a for _, a in seen]
    # made-up words from the cycle after the abort until the router stops routing
    assert o_valid == [0] * (LIMIT + 2) + [1] * (done - LIMIT - 2) + [0] * 20
    assert aborted == [0] * (LIMIT + 2) + [1] * (done + 9 - LIMIT) + [0] * 9
