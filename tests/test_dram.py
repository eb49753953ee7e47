"""LiteDRAM's controller (`rtl.dram_controller`), its init player (`rtl.dram_init`) and the
simulated DDR3 behind them (`sim.dram_core`: LiteDRAM's SDRAMPHYModel at the ECP5's 1:2 rate).

The cocotb cases (tests/cocotb_dram.py) run `DramTestTop` — the player and the controller around
the generated ``litedram_core.v`` — in Verilator: random writes with byte enables and reads,
checked bit-exactly against a Python model of the memory; sequential reads at a bounded number
in flight, whose bytes per cycle are printed; reads issued with random stalls. The first run
generates the core (a second) and compiles the simulator (about a minute); later runs reuse both.
"""

import hashlib
import json
import os
import pathlib
import time
import zlib

import amaranth
import pytest
from amaranth.back import verilog as amaranth_verilog
from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out
from amaranth.sim import Simulator
from cocotb_tools.check_results import get_results

from systolica.config import Config
from systolica.rtl.dram_controller import DramController
from systolica.rtl.dram_init import DramInit
from systolica.sim import cocotb_build, dram_core, gate_level, verilog

TESTS = pathlib.Path(__file__).resolve().parent


class DramTestTop(wiring.Component):
    """`DramInit` playing the core's init sequence into a `DramController`, whose native port
    and status are the top level's ports (``init_played``: the player is done). The read stream
    is ``rdata_valid`` and ``rdata``: a top level cannot have the constant ``ready`` of an
    always-ready stream as a port."""

    def __init__(self, info):
        self._info = info
        self._controller = DramController.from_info(info)
        members = self._controller.signature.members
        super().__init__({"cmd": members["cmd"], "wdata": members["wdata"],
                          "rdata_valid": Out(1), "rdata": Out(len(self._controller.rdata.payload)),
                          "init_done": Out(1), "init_error": Out(1), "init_played": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.controller = controller = self._controller
        m.submodules.init = init = DramInit(
            [write[:3] for write in self._info["init"]],
            addr_width=self._info["ports"]["wb_ctrl_adr"][1])
        wiring.connect(m, init.bus, controller.ctrl)
        wiring.connect(m, wiring.flipped(self.cmd), controller.cmd)
        wiring.connect(m, wiring.flipped(self.wdata), controller.wdata)
        m.d.comb += [self.rdata_valid.eq(controller.rdata.valid),
                     self.rdata.eq(controller.rdata.payload),
                     self.init_done.eq(controller.init_done),
                     self.init_error.eq(controller.init_error),
                     self.init_played.eq(init.done)]
        return m


class DramDesign:
    """`DramTestTop` and the generated core as a `cocotb_build.CocotbBuild` design: only the
    top level's ports are public (the core's many signals stay inside the C++ model)."""

    def __init__(self, kind="sim"):
        self.core = dram_core.core(kind)
        key = hashlib.sha256(f"{self.core.key} amaranth {amaranth.__version__}".encode())
        for path in (*verilog.source_files(), pathlib.Path(__file__)):
            key.update(path.read_bytes())
        self.key = key.hexdigest()
        self.dir = self.core.dir / f"top-{self.key[:16]}"

    def sources(self):
        top, ports = self.dir / f"{verilog.TOPLEVEL}.v", self.dir / "ports.vlt"
        if not ports.exists():                 # the key names the top: convert it once
            text = amaranth_verilog.convert(DramTestTop(self.core.info), name=verilog.TOPLEVEL,
                                            emit_src=False)
            for path, content in ((top, text), (ports, gate_level.ports_vlt(text))):
                tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
                tmp.write_text(content)
                tmp.replace(path)
        return [ports, self.core.verilog, top]

    def build_args(self, sim):
        return ["--no-public-flat-rw"] if sim == "verilator" else []


@pytest.fixture(scope="module")
def dram():
    """(the simulator build, seconds it took to build: 0 when cached)."""
    started = time.monotonic()
    build = cocotb_build.CocotbBuild(Config(), sim="verilator", design=DramDesign())
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
    report = tmp_path / "report.json"
    case = dict(params, seed=zlib.crc32(name.encode()) & 0xFFFF, report=str(report),
                core=str(build.design.core.json))
    started = time.monotonic()
    try:
        xml = build.run("cocotb_dram", TESTS, case, testcase=testcase)
    except SystemExit:         # under pytest, cocotb's runner exits when a test fails
        xml = next(iter(sorted(build.last_run_dir.glob("*.xml"))), build.last_run_dir / "none")
    run_s = time.monotonic() - started
    total, failed = get_results(xml) if xml.exists() else (0, 0)
    assert total >= 1 and failed == 0, f"cocotb {testcase}: {failed} of {total} failed; see {xml}"
    figures = json.loads(report.read_text())
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
