"""The DSP check of every bitstream build (`boards.dsp_check`): each family's multiplier, elaborated
for a board of that family and synthesized with that family's Yosys script, must keep the DSP
cell it instantiates as instantiated; and the check must see the rewrite that made the iCEBreaker
compute wrong GEMMs (``synth_ice40 -dsp``)."""

import json
import subprocess

import pytest
from amaranth.back import rtlil

from systolica.boards import dsp_check
from systolica.boards.catalog import BOARDS
from systolica.rtl.multiplier import PairMultiplier, RegisteredMultiplier
from systolica.sim.gate_level import yosys_path

# (board, component, synthesis command, what the check must say: [] or the changes it finds)
CASES = [
    ("icebreaker", PairMultiplier, "synth_ice40", []),
    ("icebreaker", PairMultiplier, "synth_ice40 -dsp",
     ["dsp: MODE_8x8 1 in the RTL, 0 in the netlist",
      "dsp: TOP_8x8_MULT_REG 1 in the RTL, 0 in the netlist",
      "dsp: BOT_8x8_MULT_REG 1 in the RTL, 0 in the netlist",
      "dsp: TOPOUTPUT_SELECT 2 in the RTL, 3 in the netlist",
      "dsp: BOTOUTPUT_SELECT 2 in the RTL, 3 in the netlist",
      "dsp: CLK tied to ['0'] in the netlist"]),
    ("ulx3s-25f", RegisteredMultiplier, "synth_ecp5", []),
    ("ulx3s-25f", RegisteredMultiplier, "synth_ecp5 -abc9", []),
]


def _synthesize(tmp_path, board, component, synth):
    il = rtlil.convert(component(), name="top", platform=BOARDS[board].make_platform(),
                       emit_src=False)
    (tmp_path / "top.il").write_text(il)
    subprocess.run([yosys_path(), "-q", "-p", f"read_rtlil top.il; {synth} -top top; "
                    "write_json top.json"], cwd=tmp_path, check=True, capture_output=True)
    return il, (tmp_path / "top.json").read_text()


@pytest.mark.parametrize(("board", "component", "synth", "want"), CASES,
                         ids=[f"{c[0]}-{c[2].replace(' ', '')}" for c in CASES])
def test_synthesis_keeps_the_instantiated_dsp(tmp_path, board, component, synth, want):
    il, netlist = _synthesize(tmp_path, board, component, synth)
    cell_type, _ = dsp_check.DSP_CELLS[BOARDS[board].family]
    assert len(dsp_check.rtlil_instances(il, cell_type)) == 1      # the check has a subject
    assert dsp_check.changes(il, netlist, BOARDS[board].family) == want


@pytest.mark.parametrize(("param", "value", "want"), [
    ("REG_OUTPUT_CLK", "NONE", "dsp: REG_OUTPUT_CLK 'CLK0' in the RTL, 'NONE' in the netlist"),
    ("SOURCEB_MODE", None, "dsp: SOURCEB_MODE 'B_SHIFT' in the RTL, None in the netlist"),
])
def test_a_changed_ecp5_parameter_is_named(tmp_path, param, value, want):
    """String parameters (the ECP5's register clocks) are compared too: a netlist edited to
    drop or change one is caught."""
    il, netlist = _synthesize(tmp_path, "ulx3s-25f", RegisteredMultiplier, "synth_ecp5")
    data = json.loads(netlist)
    for module in data["modules"].values():
        for cell in module.get("cells", {}).values():
            if cell["type"] == "MULT18X18D":
                if value is None:
                    del cell["parameters"][param]
                else:
                    cell["parameters"][param] = value
    assert dsp_check.changes(il, json.dumps(data), "ecp5") == [want]


def test_families_without_instantiated_dsps_have_nothing_to_check():
    assert dsp_check.changes("", "{}", "gowin") == []
