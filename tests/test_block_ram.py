# amaranth: UnusedElaboratable=no
"""Block RAMs (rtl/block_ram.py): in Amaranth's simulator every word (and every write-enable
granule) reads back what was written, `latency` cycles after its address; on ECP5 the registered
form's DP16KD instances as Yosys synthesizes them, checked pin by pin against Yosys' own DP16KD
mapping of a plain memory of the same shape.

The oracle memory writes in a clock domain of its own, so Yosys maps it straight onto a DP16KD
(with one shared clock it adds bypass logic for a read of the word being written, and its pins
no longer name the ports)."""

import json
import subprocess

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import ClockDomain, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from systolica.boards.build import tool_env
from systolica.boards.catalog import board_by_name
from systolica.rtl.block_ram import DP16KD_MODES, BlockRam, dp16kd_mode


@pytest.mark.parametrize(("depth", "registered", "granularity"), [
    (40, False, None), (40, True, None), (33, True, 8), (100, False, 4)])
def test_reads_back_what_was_written(depth, registered, granularity):
    width = 16
    dut = BlockRam(width, depth, registered=registered, granularity=granularity)
    assert dut.latency == (2 if registered else 1)
    granules = width // (granularity or width)
    rng = np.random.default_rng(depth)
    words = [0] * depth
    writes = [(int(rng.integers(depth)), int(rng.integers(1 << width)),
               int(rng.integers(1, 1 << granules))) for _ in range(3 * depth)]
    for addr, word, en in writes:
        for g in range(granules):
            if en >> g & 1:
                mask = ((1 << (width // granules)) - 1) << (g * width // granules)
                words[addr] = (words[addr] & ~mask) | (word & mask)
    reads = [int(a) for a in rng.integers(0, depth, 2 * depth)]
    assert write_then_read(dut, writes, reads) == [words[a] for a in reads]


def write_then_read(dut, writes, reads):
    """Simulate ``dut`` (a memory with ``w_addr/w_data/w_en``, ``r_addr/r_data`` and a
    ``latency``): the ``(addr, word, en)`` writes one a cycle, then one read address a cycle;
    returns the word read for each, taken ``latency`` cycles after its address."""
    got = []

    async def testbench(ctx):
        for addr, word, en in writes:
            ctx.set(dut.w_addr, addr)
            ctx.set(dut.w_data, word)
            ctx.set(dut.w_en, en)
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        for cycle in range(len(reads) + dut.latency):
            if cycle < len(reads):
                ctx.set(dut.r_addr, reads[cycle])
            await ctx.tick()
            if cycle + 1 >= dut.latency:
                got.append(ctx.get(dut.r_data))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return got[:len(reads)]


def test_granularity_must_divide_the_word():
    with pytest.raises(ValueError, match="granularity must divide the word's 16 bits"):
        BlockRam(16, 64, granularity=6)


def test_dp16kd_mode_follows_the_depth():
    assert [dp16kd_mode(d) for d in (1, 512, 513, 2048, 2049, 16384)] == [
        (512, 36), (512, 36), (1024, 18), (2048, 9), (4096, 4), (16384, 1)]
    assert dp16kd_mode(16385) is None


def ecp5_netlist(dut, tmp_path, name):
    """The DP16KDs Yosys makes of ``dut`` for the ULX3S-85F: (module, rams, pins), ``pins`` of
    each RAM naming the port bit or constant on every pin ("-" for an internal net)."""
    board = board_by_name("ulx3s-85f")
    (tmp_path / f"{name}.il").write_text(
        rtlil.convert(dut, name="top", platform=board.make_platform()))
    subprocess.run([tool_env(board)["YOSYS"], "-q", "-p",
                    f"read_rtlil {name}.il; synth_ecp5 -top top; write_json {name}.json"],
                   cwd=tmp_path, check=True, capture_output=True)
    module = json.loads((tmp_path / f"{name}.json").read_text())["modules"]["top"]
    port_of = {bit: (port, i) for port, info in module["ports"].items()
               for i, bit in enumerate(info["bits"])}
    rams = [cell for cell in module["cells"].values() if cell["type"] == "DP16KD"]
    # An undefined constant ("x", on pins Yosys leaves unused) counts as the "0" we tie them to.
    pins = [{pin: {"x": "0"}.get(bits[0], bits[0]) if bits[0] in ("0", "1", "x")
             else port_of.get(bits[0], "-") for pin, bits in ram["connections"].items()}
            for ram in rams]
    return module, rams, pins


class _Inferred(wiring.Component):
    """A plain memory written from its own clock domain, for Yosys to map its own way."""

    def __init__(self, width, depth):
        self._width, self._depth = width, depth
        super().__init__({"w_addr": In(range(depth)), "w_data": In(width), "w_en": In(1),
                          "r_addr": In(range(depth)), "r_data": Out(width)})

    def elaborate(self, platform):
        m = Module()
        m.domains.wr = ClockDomain("wr")
        m.submodules.mem = mem = Memory(shape=self._width, depth=self._depth, init=[])
        wr, rd = mem.write_port(domain="wr"), mem.read_port()
        m.d.comb += [wr.addr.eq(self.w_addr), wr.data.eq(self.w_data), wr.en.eq(self.w_en),
                     rd.addr.eq(self.r_addr), self.r_data.eq(rd.data)]
        return m


# Where the two differ by design: the clocks (one domain here), clock enables and resets.
_SAME = ("AD", "DI", "DO", "WE")


@pytest.mark.parametrize(("words", "bits"), DP16KD_MODES[:3])
def test_ecp5_dp16kd_pins_match_yosys_mapping(tmp_path, words, bits):
    _, [oracle_ram], [oracle] = ecp5_netlist(_Inferred(bits, words), tmp_path, "oracle")
    assert int(oracle_ram["parameters"]["DATA_WIDTH_B"], 2) == bits
    _, [ram], [pins] = ecp5_netlist(BlockRam(bits, words, registered=True), tmp_path, "ours")
    params = ram["parameters"]
    assert int(params["DATA_WIDTH_A"], 2) == int(params["DATA_WIDTH_B"], 2) == bits
    assert params["REGMODE_B"] == "OUTREG"
    assert params["REGMODE_A"] == ("OUTREG" if bits == 36 else "NOREG")
    # Every address, data and write enable pin as Yosys wires it; the read-data pins it leaves
    # unused ("-") we leave unconnected.
    ours = {pin: bit for pin, bit in pins.items() if pin.startswith(_SAME) and bit != "-"}
    theirs = {pin: bit for pin, bit in oracle.items() if pin.startswith(_SAME) and bit != "-"}
    assert ours == theirs
    assert pins["CLKA"] == pins["CLKB"] == ("clk", 0)


def test_ecp5_granules_get_their_own_rams(tmp_path):
    """Two 16-bit granules in the 36-bit mode: a RAM each, written by its own enable bit."""
    module, rams, pins = ecp5_netlist(BlockRam(32, 300, registered=True, granularity=16),
                                       tmp_path, "granules")
    assert len(rams) == 2
    seen = set()
    for p in pins:
        g = p["ADA0"][1]
        seen.add(g)
        assert [p[f"ADA{a}"] for a in range(4)] == [("w_en", g)] * 4
        assert [p[f"DIA{d}"] for d in range(16)] == [("w_data", 16 * g + d) for d in range(16)]
        assert [p[f"DOA{d}"] for d in range(16)] == [("r_data", 16 * g + d) for d in range(16)]
        assert p["DIA16"] == p["DIA17"] == "0" and all(p[f"DIB{d}"] == "0" for d in range(18))
    assert seen == {0, 1}
    # No fabric register after the RAMs: their output registers are the read register.
    assert not [c for c in module["cells"].values() if c["type"] == "TRELLIS_FF"]
