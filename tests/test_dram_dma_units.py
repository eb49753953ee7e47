# amaranth: UnusedElaboratable=no
"""The DMA engines (`rtl.dram_reader`, `rtl.dram_writer`, `rtl.dram_port_mux`) in Amaranth's own
simulator, against a fake native port that keeps the controller's rules: read data a fixed
number of cycles after the read command is accepted, never held back; write data taken
(``wdata.ready``) at least a fixed number of cycles after the write command is accepted, in
command order, whatever ``wdata.valid`` says. Fast and without Verilator: the reservation rule,
the reads kept in flight, the write-data rule and the arbitration, each on its own; the real
controller is in tests/test_dram_dma.py.
"""

import collections
import itertools
import random

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from systolica.rtl.dram_port_mux import DramPortMux
from systolica.rtl.dram_reader import DramReader
from systolica.rtl.dram_writer import DramWriter

ADDR_WIDTH, DATA_WIDTH = 12, 32
MAX_CYCLES = 20_000


def word(addr):
    """The fake memory's word at ``addr`` (a function of it, so every read is checkable)."""
    return random.Random(addr).getrandbits(DATA_WIDTH)


def simulate(dut, *benches):
    """Run the benches (the last one's return ends the run)."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for bench in benches[:-1]:
        sim.add_testbench(bench, background=True)
    sim.add_testbench(benches[-1])
    sim.run()


def requester(requests, stream, rng, p_idle=0.0):
    async def bench(ctx):
        for addr, count in requests:
            while rng.random() < p_idle:
                ctx.set(stream.valid, 0)
                await ctx.tick()
            ctx.set(stream.valid, 1)
            ctx.set(stream.payload, {"addr": addr, "count": count})
            await ctx.tick().until(stream.ready)
        ctx.set(stream.valid, 0)
    return bench


def regions(requests):
    return [(addr + i) % 2**ADDR_WIDTH for addr, count in requests for i in range(count)]


REQUESTS = [(5, 40), (2**ADDR_WIDTH - 3, 6), (700, 1), (0, 0), (1000, 25)]


def run_reader(*, depth, latency, p_cmd_ready, sink, requests=REQUESTS, seed=0):
    """{"most": the most reads in flight, "last": the cycle the last word left}."""
    rng = random.Random(seed)
    dut = DramReader(addr_width=ADDR_WIDTH, data_width=DATA_WIDTH, count_width=8, depth=depth)
    expected = regions(requests)
    got, stats = [], {"in_flight": 0, "most": 0, "last": None, "busy_after": None}

    async def port(ctx):
        due = collections.deque()                   # (cycle, word) of reads in flight
        for cycle in itertools.count():
            arrives = bool(due) and due[0][0] == cycle
            ctx.set(dut.rdata.valid, arrives)
            if arrives:
                ctx.set(dut.rdata.payload, due.popleft()[1])
                stats["in_flight"] -= 1
            ready = rng.random() < p_cmd_ready
            ctx.set(dut.cmd.ready, ready)
            _, _, valid, cmd = await ctx.tick().sample(dut.cmd.valid, dut.cmd.payload)
            if valid and ready:
                assert cmd.we == 0
                due.append((cycle + latency, word(cmd.addr)))
                stats["in_flight"] += 1
                stats["most"] = max(stats["most"], stats["in_flight"])

    async def consumer(ctx):
        for cycle, ready in zip(range(MAX_CYCLES), sink, strict=False):
            if len(got) == len(expected) and cycle > len(expected) + 4 * latency:
                break                               # and a while longer: no extra word
            ctx.set(dut.data.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.data.valid, dut.data.payload)
            if valid and ready:
                got.append(payload)
                stats["last"] = cycle
        stats["busy_after"] = ctx.get(dut.busy)

    simulate(dut, requester(requests, dut.req, rng), port, consumer)
    assert got == [word(a) for a in expected], "words lost, repeated or out of order"
    assert not stats["busy_after"]
    return stats


@pytest.mark.parametrize(("depth", "latency", "p_cmd_ready", "sink"), [
    (8, 3, 1.0, "always"), (8, 22, 1.0, "always"), (8, 22, 0.5, "1110"),
    (3, 5, 1.0, "random"), (4, 30, 0.8, "stalls"), (32, 22, 1.0, "stalls"),
])
def test_reader_loses_no_word_whatever_the_sink(depth, latency, p_cmd_ready, sink):
    rng = random.Random(depth * latency)
    sinks = {
        "always": itertools.repeat(1),
        "1110": itertools.cycle([1, 1, 1, 0]),
        "random": (rng.random() < 0.5 for _ in itertools.count()),
        # long stalls, with a few words taken in between
        "stalls": itertools.chain.from_iterable(
            [0] * rng.randrange(20, 120) + [1] * rng.randrange(1, 4) for _ in itertools.count()),
    }
    stats = run_reader(depth=depth, latency=latency, p_cmd_ready=p_cmd_ready, sink=sinks[sink])
    assert stats["most"] <= depth


@pytest.mark.parametrize("depth", [4, 8, 16])
def test_reader_keeps_depth_reads_in_flight(depth):
    """Behind a port slower than the FIFO is deep, exactly ``depth`` reads are in flight and
    the words leave at one per cycle once the first is back."""
    latency, count = 40, 200
    stats = run_reader(depth=depth, latency=latency, p_cmd_ready=1.0, sink=itertools.repeat(1),
                       requests=[(100, count)])
    assert stats["most"] == depth
    round_trip = latency + 3        # the command, the latency, the FIFO's write and read cycles
    assert stats["last"] <= -(-count // depth) * round_trip + round_trip


def run_writer(*, depth, latency, p_cmd_ready, p_data_idle, requests=REQUESTS, seed=0):
    rng = random.Random(seed)
    dut = DramWriter(addr_width=ADDR_WIDTH, data_width=DATA_WIDTH, count_width=8, depth=depth)
    addresses = regions(requests)
    lasts = list(itertools.accumulate(c for _, c in requests if c))   # words taken at each done
    memory, taken, dones, faults = {}, [0], [], []

    async def source(ctx):
        for addr in addresses:
            while rng.random() < p_data_idle:
                ctx.set(dut.data.valid, 0)
                await ctx.tick()
            ctx.set(dut.data.valid, 1)
            ctx.set(dut.data.payload, word(addr))
            await ctx.tick().until(dut.data.ready)
        ctx.set(dut.data.valid, 0)

    async def port(ctx):
        accepted = collections.deque()              # (earliest cycle of its wdata.ready, addr)
        for cycle in itertools.count():
            take = bool(accepted) and accepted[0][0] <= cycle and rng.random() < 0.7
            ctx.set(dut.wdata.ready, take)
            ready = rng.random() < p_cmd_ready
            ctx.set(dut.cmd.ready, ready)
            _, _, valid, cmd, wvalid, wdata, done = await ctx.tick().sample(
                dut.cmd.valid, dut.cmd.payload, dut.wdata.valid, dut.wdata.payload, dut.done)
            if valid and not accepted and not (wvalid and wdata.data == word(cmd.addr)):
                faults.append(f"cycle {cycle}: command for {cmd.addr} offered without its data")
            if take:
                _, addr = accepted.popleft()
                if not wvalid:
                    faults.append(f"cycle {cycle}: wdata taken while not valid")
                memory[addr] = wdata.data
                assert wdata.we == 2**(DATA_WIDTH // 8) - 1
                taken[0] += 1
            if done:
                dones.append(taken[0])
            if valid and ready:
                assert cmd.we == 1
                accepted.append((cycle + latency, cmd.addr))

    async def bench(ctx):
        for _ in range(MAX_CYCLES):
            if taken[0] == len(addresses) and not ctx.get(dut.busy):
                break
            await ctx.tick()
        await ctx.tick().repeat(20)                 # nothing more happens

    simulate(dut, requester(requests, dut.req, rng), source, port, bench)
    assert not faults, faults[:4]
    assert memory == {a: word(a) for a in addresses}
    assert taken[0] == len(addresses)
    assert dones == lasts


@pytest.mark.parametrize(("depth", "latency", "p_cmd_ready", "p_data_idle"), [
    (16, 1, 1.0, 0.0), (16, 4, 0.5, 0.3), (2, 4, 1.0, 0.0), (1, 1, 0.7, 0.5), (32, 30, 1.0, 0.1),
])
def test_writer_has_each_word_on_wdata_when_taken(depth, latency, p_cmd_ready, p_data_idle):
    run_writer(depth=depth, latency=latency, p_cmd_ready=p_cmd_ready, p_data_idle=p_data_idle,
               seed=depth + latency)


def test_port_mux_passes_each_command_once_in_order():
    rng = random.Random(7)
    dut = DramPortMux(addr_width=ADDR_WIDTH, data_width=DATA_WIDTH)
    plans = {1: [rng.randrange(2**ADDR_WIDTH) for _ in range(200)],
             0: [rng.randrange(2**ADDR_WIDTH) for _ in range(200)]}
    seen = {0: [], 1: []}

    def side(cmd, addresses, we):
        async def bench(ctx):
            for addr in addresses:
                while rng.random() < 0.4:
                    ctx.set(cmd.valid, 0)
                    await ctx.tick()
                ctx.set(cmd.valid, 1)
                ctx.set(cmd.payload, {"we": 1 - we, "addr": addr})    # ``we`` is the mux's
                await ctx.tick().until(cmd.ready)
            ctx.set(cmd.valid, 0)
        return bench

    async def port(ctx):
        for _ in range(MAX_CYCLES):
            if len(seen[0]) + len(seen[1]) == 400:
                break
            ready = rng.random() < 0.6
            ctx.set(dut.cmd.ready, ready)
            _, _, valid, cmd = await ctx.tick().sample(dut.cmd.valid, dut.cmd.payload)
            if valid and ready:
                seen[cmd.we].append(cmd.addr)

    simulate(dut, side(dut.write.cmd, plans[1], 1), side(dut.read.cmd, plans[0], 0), port)
    assert seen == plans


def test_arguments_are_checked():
    with pytest.raises(TypeError, match="depth must be a positive integer"):
        DramReader(depth=0)
    with pytest.raises(ValueError, match="depth must be at least 3"):
        DramReader(depth=2)
    with pytest.raises(TypeError, match="count_width must be a positive integer"):
        DramWriter(count_width=2.5)
    with pytest.raises(ValueError, match="whole number of bytes"):
        DramPortMux(data_width=12)
    for dut in (DramReader(), DramWriter(), DramPortMux()):
        Fragment.get(dut, None)
