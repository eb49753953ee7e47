"""Build and run cocotb testbenches against the generated Verilog, with a content-keyed cache.

A build lives in ``build/cocotb/<config label>-<key>/`` where the key hashes what determines the
Verilog (`verilog.source_key`), the testbench sources, the build flags and the tool versions: any
change rebuilds, nothing stale runs. ``SIM=icarus`` selects Icarus Verilog (if installed); ``WAVES=1`` dumps a waveform.

Safe to use from parallel test workers (pytest-xdist): one process builds a configuration while
the others wait on a lock in its folder, and every run has a folder of its own for its results.

A build may also simulate other sources than the generated Verilog: a ``design`` (such as
`gate_level.Netlist`, the synthesized netlist with its cell models) brings its own files, its
own key, its own folder and its own extra simulator flags; the testbench and the top level's
name stay the same.
"""

import hashlib
import json
import os
import pathlib
import tempfile

from . import toolchain, verilog
from .file_lock import locked

__all__ = ["BUILD_ROOT", "CocotbBuild", "build"]

REPO = pathlib.Path(__file__).resolve().parent.parent
BUILD_ROOT = REPO / "build"
SIM_DIR = pathlib.Path(__file__).resolve().parent

VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast",
                  "--x-initial", "fast"]


def _selected_simulator():
    sim = os.environ.get("SIM", "verilator")
    if sim not in ("verilator", "icarus"):
        raise ValueError(f"SIM must be 'verilator' or 'icarus', not {sim!r}")
    return sim


def _waves():
    return os.environ.get("WAVES", "0") not in ("", "0")


class CocotbBuild:
    """A compiled simulation of the accelerator at one configuration.

    Parameters
    ----------
    config : Config
        The configuration (the testbench reads it too).
    sim, waves : simulator (default ``SIM``, else Verilator) and waveform dump (default
        ``WAVES``).
    design : object, optional
        What to simulate instead of the Verilog generated from ``config``, with a top level of
        the same name and ports: it has ``key`` (a string naming its sources' content), ``dir``
        (the folder its builds go in), ``build_args(sim)`` (flags added to the simulator's) and
        ``sources()`` (its Verilog files, made first if needed; called under the build's lock).
    """

    def __init__(self, config, *, sim=None, waves=None, design=None):
        from cocotb_tools.runner import get_runner

        toolchain.apply_simulator_env()
        self.config = config
        self.design = design
        self.last_run_dir = None     # the folder of the last `run` (its results XML is there)
        self.sim = sim or _selected_simulator()
        self.waves = _waves() if waves is None else waves
        args = VERILATOR_ARGS if self.sim == "verilator" else []
        if design is not None:
            args = [*args, *design.build_args(self.sim)]
        key = hashlib.sha256()
        for part in (verilog.source_key(config) if design is None else design.key,
                     toolchain.tool_versions(self.sim), json.dumps(args),
                     str(self.waves), *(p.read_text() for p in sorted(SIM_DIR.glob("*.py")))):
            key.update(part.encode())
        if design is None:
            self.dir = BUILD_ROOT / "cocotb" / f"{config.label()}-{self.sim}-{key.hexdigest()[:16]}"
        else:
            self.dir = pathlib.Path(design.dir) / f"{self.sim}-{key.hexdigest()[:16]}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.runner = get_runner(self.sim)
        with locked(self.dir / "build.lock"):
            if design is None:
                source = self.dir / f"{verilog.TOPLEVEL}.v"
                if not source.exists():          # the key names the Verilog: generate it once
                    tmp = source.with_name(f"{source.name}.tmp{os.getpid()}")
                    tmp.write_text(verilog.generate(config))
                    tmp.replace(source)
                sources = [source]
            else:
                sources = list(design.sources())
            # The runner must be told the sources in every process; with the stamp from an
            # earlier finished build it only checks the build is up to date.
            stamp = self.dir / "built.ok"
            self.runner.build(
                sources=sources, hdl_toplevel=verilog.TOPLEVEL, build_dir=self.dir,
                build_args=args, waves=self.waves, always=not stamp.exists(),
                timescale=("1ns", "1ps"),
            )
            stamp.touch()

    def run(self, test_module, test_dir, case, *, testcase=None):
        """Run cocotb ``test_module`` (a module in ``test_dir``) with ``case`` (JSON-able) in the
        environment as SYSTOLICA_CASE; returns the results XML path."""
        extra_env = {
            "SYSTOLICA_CASE": json.dumps(case),
            "SYSTOLICA_CONFIG": json.dumps(self.config.__dict__),
            "PYTHONPATH": os.pathsep.join([str(test_dir), os.environ.get("PYTHONPATH", "")]),
        }
        runs = self.dir / "runs"
        runs.mkdir(exist_ok=True)
        run_dir = pathlib.Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=runs))
        # Under pytest the runner exits (SystemExit) when a test fails; its results are here.
        self.last_run_dir = run_dir
        return self.runner.test(
            test_module=test_module, hdl_toplevel=verilog.TOPLEVEL, testcase=testcase,
            build_dir=self.dir, test_dir=run_dir, extra_env=extra_env, waves=self.waves,
            timescale=("1ns", "1ps"),
        )


_builds = {}


def build(config, **kwargs):
    """The (cached) `CocotbBuild` for ``config``."""
    key = (config, tuple(sorted(kwargs.items())))
    if key not in _builds:
        _builds[key] = CocotbBuild(config, **kwargs)
    return _builds[key]
