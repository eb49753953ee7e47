"""The cocotb GEMM test on the iCEBreaker's post-synthesis netlist (gate-level simulation).

The `Accelerator` at the iCEBreaker's `Config`, elaborated for its platform (the PEs' products in
SB_MAC16s it instantiates) and synthesized as its bitstream build does (Yosys ``synth_ice40`` with
the board's options), is simulated with Yosys' iCE40 cell models in Verilator
(`systolica.sim.gate_level`); the `gemms` cocotb test of tests/test_accelerator.py runs on it
unchanged and checks every result against numpy, exactly. The first run synthesizes and compiles
(a minute or two), later runs reuse both while the RTL and the tools stay the same.
"""

import json
import pathlib
import time
import xml.etree.ElementTree as ET
import zlib

import pytest
from cocotb_tools.check_results import get_results

from systolica.sim import gate_level

TESTS = pathlib.Path(__file__).resolve().parent
BOARD = "icebreaker"

# Small shapes: a cocotb cycle costs the same here as in the RTL simulation, and the 1-byte link
# makes a GEMM's frames most of its cycles. Ragged shapes (N, M not multiples of the 4x4 array,
# K odd) and one with extremes: -128 everywhere, the largest products and sums.
GEMMS = [(3, 7, 2, "random", "random"), (5, 9, 4, "random", "random"),
         (4, 9, 5, "min", "min")]


@pytest.fixture(scope="module")
def gate():
    """The iCEBreaker's netlist and its cocotb simulation: (netlist, build, synthesis seconds,
    simulator build seconds); seconds are 0 when they were cached."""
    netlist = gate_level.netlist(BOARD)
    started = time.monotonic()
    netlist.synthesize()
    synthesized = time.monotonic()
    build = gate_level.build(BOARD)
    return netlist, build, synthesized - started, time.monotonic() - synthesized


def _failures(xml):
    """The failure messages in a cocotb results file."""
    root = ET.parse(xml).getroot()
    return [f"{case.get('name')}: {failure.get('message')}"
            for case in root.iter("testcase") for failure in case.iter("failure")]


def test_gemms_on_icebreaker_netlist(gate, tmp_path, capsys):
    netlist, build, synth_s, build_s = gate
    report = tmp_path / "report.json"
    case = dict(gemms=GEMMS, idle=0.0, backpressure=0.0,
                seed=zlib.crc32(b"gate-level") & 0xFFFF, report=str(report))
    started = time.monotonic()
    try:
        xml = build.run("cocotb_accelerator", TESTS, case, testcase="gemms")
    except SystemExit:         # under pytest, cocotb's runner exits when a test fails
        xml = next(iter(sorted(build.last_run_dir.glob("*.xml"))), build.last_run_dir / "none")
    run_s = time.monotonic() - started
    cells = netlist.summary()
    with capsys.disabled():
        print(f"\n{BOARD} netlist (synth_ice40 {netlist.synth_opts}): {cells['SB_LUT4']} SB_LUT4, "
              f"{cells['SB_CARRY']} SB_CARRY, {cells['DFFs']} DFFs, {cells['SB_MAC16']} SB_MAC16, "
              f"{cells['SB_RAM40_4K']} SB_RAM40_4K; synthesis {synth_s:.0f} s, Verilator build "
              f"{build_s:.0f} s (0: cached), cocotb run {run_s:.1f} s")
    total, failed = get_results(xml) if xml.exists() else (0, 0)
    assert total >= 1 and failed == 0, (
        f"gate-level gemms on the {BOARD} netlist: {failed} of {total} failed "
        f"({'; '.join(_failures(xml))}); see {xml}")
    figures = json.loads(report.read_text())
    assert len(figures["gemms"]) == len(GEMMS)


def test_instantiated_dsps_survive_synthesis(gate):
    """The SB_MAC16s the RTL instantiates (`PairMultiplier`: two registered 8x8 products each)
    reach the netlist with the parameters the RTL gave them and their clock.

    With Yosys 0.70's ``synth_ice40 -dsp`` they do not: its ice40_dsp pass matches SB_MAC16 cells
    as well as $mul, and rewrites every one it matches for its own 16x16 mode (MODE_8x8=0, no
    product registers, output select 3, and with no register found, CLK and CE tied to 0). The
    gemms test above then fails on the netlist; without ``-dsp`` the netlist keeps the cells as
    instantiated and the same GEMMs come out exact (see `gate_level.Netlist` ``synth_opts``)."""
    netlist, _, _, _ = gate
    changes = netlist.instance_changes()
    assert not changes, (f"synth_ice40 {netlist.synth_opts} changed {len(changes)} things in the "
                         "instantiated SB_MAC16s:\n" + "\n".join(changes[:12]))
