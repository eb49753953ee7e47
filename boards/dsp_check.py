"""Whether synthesis kept the DSP cells the RTL instantiates as the RTL instantiated them.

The multipliers of the iCE40 and ECP5 builds are hard DSP cells that the RTL instantiates with
their registers set (`rtl.multiplier`: SB_MAC16 in its 8x8 mode, MULT18X18D with input and
output registers). A synthesis pass may still rewrite such a cell: Yosys's ``synth_ice40 -dsp``
turned every instantiated SB_MAC16 into an unregistered 16x16 multiplier, with its clock tied to
0, and the bitstream computed wrong GEMMs (reports/build_history.md). Yosys ships no simulation
models of the ECP5 and Gowin DSPs, so a netlist with them cannot be simulated here; what can be
checked on every family is the netlist itself. `changes` compares each instantiated cell in the
RTLIL the build read with the same cell in the netlist it wrote (Yosys ``write_json``, the file
nextpnr reads): every parameter the RTL set must be there with the same value, and the clock
inputs must still be driven by a net, not a constant.
"""

import json
import re

__all__ = ["DSP_CELLS", "changes", "netlist_instances", "rtlil_instances"]

# The DSP cell the RTL instantiates on each family, and its clock inputs. (The Gowin builds
# infer their multipliers from `*`: nothing instantiated to check.)
DSP_CELLS = {"ice40": ("SB_MAC16", ("CLK",)), "ecp5": ("MULT18X18D", ("CLK0",))}


def _rtlil_value(text):
    """An RTLIL parameter value (``1``, ``2'10``, ``"CLK0"``) as an int or a str (None if it has
    x or z bits)."""
    if text.startswith('"'):
        return text[1:-1]
    if "'" not in text:
        return int(text)
    bits = text.split("'", 1)[1]
    return int(bits, 2) if set(bits) <= {"0", "1"} else None


def _json_value(value):
    """A ``write_json`` parameter value: a bit string (as an int; None with x or z), or a
    string (Yosys adds a space to a string that would read as bits)."""
    if isinstance(value, int):
        return value
    if value and set(value) <= {"0", "1"}:
        return int(value, 2)
    if value and set(value) <= {"0", "1", "x", "z"}:
        return None
    return value[:-1] if value.endswith(" ") and set(value[:-1]) <= {"0", "1", "x", "z"} \
        else value


def rtlil_instances(rtlil_text, cell_type):
    """{hierarchical name below the top: {parameter: value}} of the ``cell_type`` cells in an
    RTLIL design (Amaranth ``Instance``\\ s), named as the flattened netlist names them."""
    found = {}
    for module in re.finditer(r"^module \\(\S+)\n(.*?)^end\n", rtlil_text, re.S | re.M):
        path = module.group(1).split(".")[1:]
        for cell in re.finditer(rf"^  cell \\{cell_type} \\(\S+)\n((?:    .*\n)*?)  end",
                                module.group(2), re.M):
            params = dict(re.findall(r"^    parameter \\(\S+) (.+)$", cell.group(2), re.M))
            found[".".join([*path, cell.group(1)])] = {
                name: _rtlil_value(value) for name, value in params.items()}
    return found


def netlist_instances(netlist, cell_type):
    """{name: ({parameter: value}, {port: [bits]})} of the ``cell_type`` cells in a
    ``write_json`` netlist (parsed), over all its modules; a bit is a net number or a constant
    ("0", "1", "x")."""
    found = {}
    for module in netlist["modules"].values():
        for name, cell in module.get("cells", {}).items():
            if cell["type"] == cell_type:
                params = {k: _json_value(v) for k, v in cell.get("parameters", {}).items()}
                found[name] = (params, cell.get("connections", {}))
    return found


def changes(rtlil_text, netlist_text, family):
    """How synthesis changed the DSP cells the RTL instantiates on ``family``: ``"name: what"``
    lines, empty when every one is in the netlist with the parameters the RTL gave it and a
    clock driven by a net."""
    if family not in DSP_CELLS:
        return []
    cell_type, clocks = DSP_CELLS[family]
    wanted = rtlil_instances(rtlil_text, cell_type)
    got = netlist_instances(json.loads(netlist_text), cell_type)
    found = []
    for name, params in sorted(wanted.items()):
        if name not in got:
            found.append(f"{name}: not in the netlist")
            continue
        netlist_params, ports = got[name]
        for param, value in params.items():
            if netlist_params.get(param) != value:
                found.append(f"{name}: {param} {value!r} in the RTL, "
                             f"{netlist_params.get(param)!r} in the netlist")
        for clock in clocks:
            bits = ports.get(clock, [])
            if not bits or any(isinstance(bit, str) for bit in bits):
                found.append(f"{name}: {clock} tied to {bits} in the netlist")
    return found
