"""LiteDRAM's DRAM controller as a Verilog core, generated from PyPI at build time, and its cache.

`core` returns the generated ``litedram_core.v`` and a JSON description of it (its ports, the
CSR addresses, LiteDRAM's own DDR3 init sequence as control-bus writes, the PHY settings), so
that the gateware (`rtl.dram_controller`, `rtl.dram_init`) is elaborated from plain JSON and
never imports LiteX. The generator itself runs in a subprocess (``python -m
systolica.sim.dram_core OUT.v OUT.json PARAMETERS``): litex and migen are never imported into a
test or host process.

The only kind today is ``"sim"``: the controller with LiteDRAM's ``SDRAMPHYModel`` (the DRAM as
Verilog arrays) for an ECPIX-5-like DDR3 (2 × MT41K256M16 = 512 MiB, 16-bit bus, 75 MHz system
clock, one 128-bit native user port, no CPU). LiteDRAM's ``litedram_gen --sim`` forces DDR3 to
a 1:4 DFI rate, twice the ECP5 PHY's 1:2 (16 B per cycle at best instead of 8); here the module
timings are taken at 1:2 and the model gets the PHY settings ``ECP5DDRPHY`` computes (2 phases,
CL 6, CWL 5, read latency 13, write latency 3), so the model's bandwidth and latency are the
board's, give or take the PHY's I/O. The model's bank arrays hold one entry per BL8 burst
(`BankModel` assumes 4 phases; left as it is, at 2 phases it would double them to 1 GiB).

Cache: ``build/dram/<kind>-<key16>/``, the key hashing this file, the core's parameters and the
installed litedram, litex and migen versions (not the Verilog, whose header carries a date). A
file lock makes parallel test workers generate once.
"""

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import types

from .file_lock import locked

__all__ = ["DRAM_ROOT", "KINDS", "DramCore", "core"]

DRAM_ROOT = pathlib.Path(__file__).resolve().parent.parent / "build" / "dram"
PACKAGES = ("litedram", "litex", "migen")

# gen.py's core_config keys (as its YAML would have them), plus "rate", this generator's own.
KINDS = {
    "sim": {
        "memtype": "DDR3", "sdram_module": "MT41K256M16", "sdram_module_nb": 2,
        "sdram_rank_nb": 1, "sys_clk_freq": 75e6, "cmd_buffer_depth": 16, "rate": "1:2",
        "trfc_ns": 260,
        "user_ports": {"native_0": {"type": "native"}},
    },
    # The ECPIX-5's own: `docs/litedram-notes.md` section 2's YAML (clk100 in, sys 75 MHz,
    # sys2x 150 MHz, init 25 MHz), with the same tRFC.
    "ecpix5": {
        "device": "LFE5UM5G-85F-8BG554I", "sdram_phy": "ECP5DDRPHY",
        "memtype": "DDR3", "sdram_module": "MT41K256M16", "sdram_module_nb": 2,
        "sdram_rank_nb": 1, "input_clk_freq": 100e6, "sys_clk_freq": 75e6,
        "init_clk_freq": 25e6, "cmd_buffer_depth": 16, "rate": "1:2", "trfc_ns": 260,
        "user_ports": {"native_0": {"type": "native"}},
    },
}

# LiteDRAM's DFII register bits (litedram/init.py `get_sdram_phy_py_header`).
DFII_BITS = {
    "DFII_CONTROL_SEL": 0x01, "DFII_CONTROL_CKE": 0x02, "DFII_CONTROL_ODT": 0x04,
    "DFII_CONTROL_RESET_N": 0x08, "DFII_COMMAND_CS": 0x01, "DFII_COMMAND_WE": 0x02,
    "DFII_COMMAND_CAS": 0x04, "DFII_COMMAND_RAS": 0x08,
}
_SOFTWARE_CONTROL = "DFII_CONTROL_CKE|DFII_CONTROL_ODT|DFII_CONTROL_RESET_N"


class DramCore:
    """A generated LiteDRAM core: ``verilog`` (its path), ``info`` (the JSON, as a dict)."""

    def __init__(self, directory):
        self.dir = pathlib.Path(directory)
        self.verilog = self.dir / "litedram_core.v"
        self.json = self.dir / "dram_core.json"
        self.info = json.loads(self.json.read_text())

    @property
    def key(self):
        return self.dir.name


def _versions():
    missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not installed (the DRAM controller core is "
                           "generated from PyPI's litedram, litex and migen): `make setup` "
                           "installs them")
    return {name: importlib.metadata.version(name) for name in PACKAGES}


def core(kind="sim"):
    """The `DramCore` of ``kind`` (a key of `KINDS`), generated unless it is cached."""
    parameters = KINDS[kind]
    key = hashlib.sha256()
    for part in (pathlib.Path(__file__).read_bytes(), json.dumps(parameters, sort_keys=True).encode(),
                 json.dumps(_versions(), sort_keys=True).encode()):
        key.update(part)
        key.update(b"\0")
    directory = DRAM_ROOT / f"{kind}-{key.hexdigest()[:16]}"
    stamp = directory / "dram_core.json"              # written last: the core is complete
    with locked(directory / "generate.lock"):
        if not stamp.exists():
            tmp_v = directory / f"litedram_core.v.tmp{os.getpid()}"
            tmp_j = directory / f"dram_core.json.tmp{os.getpid()}"
            done = subprocess.run(
                [sys.executable, "-m", "systolica.sim.dram_core", str(tmp_v), str(tmp_j),
                 json.dumps(parameters)], capture_output=True, text=True, check=False)
            if done.returncode != 0 or not tmp_j.exists():
                raise RuntimeError(f"LiteDRAM core generation failed (rc {done.returncode}):\n"
                                   f"{(done.stderr or done.stdout)[-3000:]}")
            tmp_v.replace(directory / "litedram_core.v")
            tmp_j.replace(stamp)
    return DramCore(directory)


# --- the generator (runs in the subprocess: the only place litex and migen are imported) ------

def _board_rate_phy_settings(memtype, data_width, clk_freq):
    """The model's PHY settings at the ECP5 PHY's 1:2 rate, as ``ECP5DDRPHY.__init__`` computes
    its own (litedram/phy/ecp5ddrphy.py); the model adds no I/O latency of its own."""
    from litedram.common import (
        PhySettings,
        get_default_cl,
        get_default_cwl,
        get_sys_latency,
        get_sys_phase,
    )

    assert memtype == "DDR3"
    nphases, tck = 2, 2 / (2 * 2 * clk_freq)
    cl, cwl = get_default_cl(memtype, tck), get_default_cwl(memtype, tck)
    cl_sys, cwl_sys = get_sys_latency(nphases, cl), get_sys_latency(nphases, cwl)
    return PhySettings(
        phytype="SDRAMPHYModel", memtype=memtype, databits=data_width,
        dfi_databits=4 * data_width, nphases=nphases, rdphase=get_sys_phase(nphases, cl_sys, cl),
        wrphase=get_sys_phase(nphases, cwl_sys, cwl), cl=cl, cwl=cwl,
        read_latency=cl_sys + 10, write_latency=cwl_sys)


def _init_writes(soc, csr):
    """LiteDRAM's DDR3 init as the BIOS plays it (liblitedram `sdram_init` without leveling,
    which the model has no PHY for): [word address, data, cycles to wait after, what]."""
    from litedram.init import get_sdram_phy_init_sequence

    def bits(names):
        return sum(DFII_BITS[name.strip()] for name in names.split("|"))

    def write(name, value, wait=0, what=""):
        return [csr[name] >> 2, value, wait, what or name]

    sequence, _ = get_sdram_phy_init_sequence(soc.sdram.controller.settings.phy,
                                             soc.sdram.controller.settings.timing)
    writes = [write("sdram_dfii_control", bits(_SOFTWARE_CONTROL), 0, "software control")]
    for what, address, bank, command, wait in sequence:
        writes += [write("sdram_dfii_pi0_address", address), write("sdram_dfii_pi0_baddress", bank)]
        if command.startswith("DFII_CONTROL"):
            writes.append(write("sdram_dfii_control", bits(command), wait, what))
        else:
            writes += [write("sdram_dfii_pi0_command", bits(command)),
                       write("sdram_dfii_pi0_command_issue", 1, wait, what)]
    writes.append(write("sdram_dfii_control", DFII_BITS["DFII_CONTROL_SEL"], 0, "hardware control"))
    writes.append(write("ddrctrl_init_done", 1, 0, "init done"))
    return writes


def _ports(verilog):
    """{port: [direction, width]} of the ``litedram_core`` module in ``verilog``."""
    header = re.search(r"^module litedram_core\s*\((.*?)\);", verilog, re.S | re.M).group(1)
    return {name: [direction, int(msb) + 1 if msb else 1] for direction, msb, name in re.findall(
        r"(input|output)\s+(?:wire|reg)?\s*(?:\[(\d+):0\])?\s*(\w+)", header)}


def _generate(verilog_path, json_path, parameters):
    hardware = "sdram_phy" in parameters
    if not hardware:
        # litedram 2024.12's gen.py imports `get_sdram_phy_settings` from litex.tools.litex_sim
        # for a SimPlatform; that module imports liteeth and litescope, which the core does not
        # use (the function lives in litedram.phy.model, where LiteDRAM's HEAD imports it from).
        # A stand-in module with only that function, giving the board's rate, avoids both.
        stand_in = types.ModuleType("litex.tools.litex_sim")
        stand_in.get_sdram_phy_settings = _board_rate_phy_settings
        sys.modules["litex.tools.litex_sim"] = stand_in

    from litedram import modules
    from litedram import phy as litedram_phys
    from litedram.common import burst_lengths
    from litedram.gen import LiteDRAMCore
    from litedram.phy import model
    from litex.build.lattice import LatticePlatform
    from litex.build.sim import SimPlatform
    from litex.soc.integration import export
    from litex.soc.integration.builder import Builder

    parameters = dict(parameters)
    assert parameters.pop("rate") == "1:2"
    trfc_ns = parameters.pop("trfc_ns")
    module = getattr(modules, parameters["sdram_module"])
    base = module.speedgrade_timings["default"]
    timings = {"default": modules._SpeedgradeTimings(
        tRP=base.tRP, tRCD=base.tRCD, tWR=base.tWR, tRFC=(None, trfc_ns), tFAW=base.tFAW,
        tRAS=base.tRAS)}

    class BoardRateModule(module):
        """The module's timings in system cycles at 1:2 (gen.py asks for 1:4 on a SimPlatform;
        the ECP5 PHY is 1:2 already), with the refresh time (tRFC) in nanoseconds, as the
        part's datasheet gives it (260 ns for the 4 Gb MT41K256M16): LiteDRAM states it as 208
        clocks, which is 260 ns only at DDR3-1600's clock; at the ECP5 PHY's 150 MHz DRAM clock
        208 clocks are 1.39 us, and refresh took 17.7 % of the time instead of 3.4 %."""

        speedgrade_timings = timings

        def __init__(self, clk_freq, rate, **kwargs):
            super().__init__(clk_freq, "1:2", **kwargs)

    class BurstBankModel(model.BankModel):
        """The model's bank with one array entry per DDR3 burst (BL8, as the controller
        addresses columns): `BankModel` counts 2 column addresses per phase, right at 1:4 only;
        at 1:2 it would make every array twice the size, with every other entry unused."""

        def __init__(self, data_width, nrows, ncols, burst_length, nphases, **kwargs):
            super().__init__(data_width, nrows, ncols, burst_lengths["DDR3"] // nphases, nphases,
                             **kwargs)

    core_config = {**parameters, "cpu": None, "sdram_module": BoardRateModule}
    if hardware:
        # What `litedram_gen` does for an ECP5 PHY: a Trellis platform, then the builder up to
        # the Verilog (compile_gateware=False), in a scratch folder beside the output.
        core_config["sdram_phy"] = getattr(litedram_phys, parameters["sdram_phy"])
        platform = LatticePlatform(parameters["device"], io=[], toolchain="trellis")
        soc = LiteDRAMCore(platform, core_config)
        scratch = pathlib.Path(verilog_path).with_suffix(".build")
        Builder(soc, output_dir=str(scratch), compile_gateware=False,
                compile_software=False).build(build_name="litedram_core", regular_comb=False)
        (scratch / "gateware" / "litedram_core.v").replace(verilog_path)
        shutil.rmtree(scratch)
    else:
        model.BankModel = BurstBankModel
        platform = SimPlatform("", io=[])
        soc = LiteDRAMCore(platform, core_config)
        # What Builder.build and the sim toolchain do up to the Verilog, without their C++ steps
        # (which need pythondata-misc-tapcfg).
        soc.finalize()
        fragment = soc.get_fragment()
        platform.finalize(fragment)
        platform.get_verilog(fragment, name="litedram_core", regular_comb=False).write(
            verilog_path)

    csr_map = json.loads(export.get_csr_json(csr_regions=soc.csr_regions,
                                             constants=soc.constants))["csr_registers"]
    csr = {name: entry["addr"] for name, entry in csr_map.items()}
    settings = soc.sdram.controller.settings
    info = {
        "parameters": {**parameters, "rate": "1:2", "trfc_ns": trfc_ns},
        "versions": _versions(),
        "ports": _ports(pathlib.Path(verilog_path).read_text()),
        "csr": csr,
        "init": _init_writes(soc, csr),
        "phy": {name: getattr(settings.phy, name) for name in (
            "nphases", "cl", "cwl", "read_latency", "write_latency", "rdphase", "wrphase")},
        "timing": {name: getattr(settings.timing, name) for name in (
            "tRP", "tRCD", "tWR", "tREFI", "tRFC", "tCCD", "tRAS")},
    }
    if getattr(settings.phy, "read_leveling", False):
        info["read_leveling"] = {"modules": settings.phy.strobes,
                                 "bitslips": settings.phy.bitslips,
                                 "delays": settings.phy.delays}
    pathlib.Path(json_path).write_text(json.dumps(info, indent=1) + "\n")


if __name__ == "__main__":
    _versions()
    _generate(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
