"""LiteDRAM's controller (`rtl.dram_controller`), its init player (`rtl.dram_init`) and the
simulated DDR3 behind them (`sim.dram_core`: LiteDRAM's SDRAMPHYModel at the ECP5's 1:2 rate).

The cocotb cases (tests/cocotb_dram.py) run `dram_bench.DramTestTop` — the player and the
controller around the generated ``litedram_core.v`` — in Verilator: random writes with byte
enables and reads, checked bit-exactly against a Python model of the memory; sequential reads at
a bounded number in flight, whose bytes per cycle are printed; reads issued with random stalls.
The first run generates the core (a second) and compiles the simulator (about a minute); later
runs reuse both.
"""

import pathlib
import time
import zlib

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator
from dram_bench import DramDesign, run_case

from systolica.config import Config
from systolica.rtl.dram_controller import DramController
from systolica.rtl.dram_init import DramInit
from systolica.sim import cocotb_build, dram_core

TESTS = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def dram():
    """(the simulator build, seconds it took to build: 0 when cached). The top with the DMA
    engines, as tests/test_dram_dma.py builds it (one simulator for both files); these tests
    drive the controller's port themselves (``use_dma`` low)."""
    started = time.monotonic()
    build = cocotb_build.CocotbBuild(Config(), sim="verilator", design=DramDesign(dma=True))
    return build, time.monotonic() - started


CASES = {
    "random-access": ("random_access", dict(ops=400, addresses=48)),
    "sequential-16": ("sequential_read", dict(words=2048, in_flight=16)),
    "sequential-32": ("sequential_read", dict(words=2048, in_flight=32)),
    "stalled-reads": ("stalled_reads", dict(reads=256, in_flight=8, idle=0.6)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_dram_matches_model(name, dram, tmp_path, capsys):
    build, build_s = dram
    testcase, params = CASES[name]
    figures, run_s = run_case(build, "cocotb_dram", TESTS, testcase, params,
                              tmp_path / "report.json", seed=zlib.crc32(name.encode()) & 0xFFFF)
    if testcase == "sequential_read":
        peak, clock = figures["peak_bytes_per_cycle"], build.design.core.info["parameters"]
        read, write = figures["read_bytes_per_cycle"], figures["write_bytes_per_cycle"]
        summary = (f"{figures['words']} sequential words, at most {figures['most_in_flight']} "
                   f"reads in flight: read {read:.2f} B/cycle ({read / peak:.0%} of the "
                   f"{peak:g} B/cycle peak, {read * clock['sys_clk_freq'] / 1e6:.0f} MB/s at "
                   f"{clock['sys_clk_freq'] / 1e6:g} MHz), write {write:.2f} B/cycle")
        assert figures["most_in_flight"] <= figures["in_flight"]
        assert 0 < read <= peak and 0 < write <= peak
    else:
        summary = ", ".join(f"{k} {v}" for k, v in figures.items())
    with capsys.disabled():
        print(f"\nDRAM {name}: {summary}; simulator build (or cache check) {build_s:.0f} s, "
              f"cocotb run {run_s:.1f} s")


def test_controller_connects_every_core_port():
    info = dram_core.core().info
    Fragment.get(DramController.from_info(info), None)
    ports = dict(info["ports"], extra_port=["output", 1])
    with pytest.raises(ValueError, match="extra_port"):
        DramController.from_info(dict(info, ports=ports))


def test_init_player_writes_in_order_with_waits():
    """Every write reaches a Wishbone target that acks on a request's third cycle: once, in
    order, with all bytes enabled and at least its wait between its ack and the next request;
    then ``done``, and no ``error``."""
    writes = [(0x200, 0xE, 0), (0x203, 0x5, 7), (0x000, 0x1, 3), (0x3FF, 0xFFFFFFFF, 0)]
    dut = DramInit(writes, addr_width=10)
    starts, acks = [], []

    async def target(ctx):
        held = cycle = 0
        while True:
            request = ctx.get(dut.bus.cyc) and ctx.get(dut.bus.stb)
            held = held + 1 if request else 0
            if held == 1:
                starts.append(cycle)
            ctx.set(dut.bus.ack, held == 3)
            if held == 3:
                assert ctx.get(dut.bus.we) and ctx.get(dut.bus.sel) == 0xF
                acks.append((cycle, ctx.get(dut.bus.adr), ctx.get(dut.bus.dat_w)))
            await ctx.tick()
            cycle += 1

    async def bench(ctx):
        for _ in range(200):
            if ctx.get(dut.done):
                break
            await ctx.tick()
        assert ctx.get(dut.done) and not ctx.get(dut.error)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(target, background=True)
    sim.add_testbench(bench)
    sim.run()
    assert [(a, d) for _, a, d in acks] == [(a, d) for a, d, _ in writes]
    assert len(starts) == len(writes)
    for (ack_cycle, _, _), (_, _, wait), start in zip(acks, writes[:-1], starts[1:], strict=False):
        assert start - ack_cycle - 1 >= wait, (start, ack_cycle, wait)


def test_missing_litedram_says_how_to_install(monkeypatch):
    real = dram_core.importlib.util.find_spec
    monkeypatch.setattr(dram_core.importlib.util, "find_spec",
                        lambda name: None if name == "litedram" else real(name))
    with pytest.raises(RuntimeError, match=r"litedram not installed.*`make setup`"):
        dram_core.core()
