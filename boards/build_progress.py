"""What a bitstream build is doing, read from the tools' own logs as they grow: the phase
(synthesis, packing, placement, routing, bitstream), placement's clock estimate, the router's
remaining arcs (router1) or overused wires (router2), and the elapsed time; and whether the
router has stalled (`BuildProgress.stalled`)."""

import dataclasses
import re
import threading
import time

__all__ = ["BuildProgress", "LogTail"]

_YOSYS_PASS = re.compile(r"^\d+\.\d+(?:\.\d+)*\. Executing (\S+)")
_FMAX = re.compile(r"Max frequency for clock +'[^']*': ([\d.]+) MHz")
_ROUTER1 = re.compile(r"^Info: +(\d+) \| +\d+ +\d+ \| +\d+ +\d+ \| +(\d+)\|")
_ROUTER2 = re.compile(r"iter=(\d+) wires=(\d+) overused=(\d+)")

# A router has stalled when what it has left (router1: arcs, reported every 1,000 iterations;
# router2: overused wires, every iteration) either has gone `STALL_REPORTS` reports without a
# new low while that low is at least `STALL_TAIL`, or has risen to more than four times its low
# plus 50. Measured on this design's ECP5 builds (router2):
# - runs that routed reached a new low every one or two iterations while above 100 wires; in
#   the tail below that they could go long without one (the ECPIX-5, HeAP seed 1, at 80d8d05:
#   1 to 3 wires from iteration 77 to 125, routed at 126; the DRAM board, static seed 1: 20
#   iterations between lows at 2 to 9 wires, routed at 92);
# - runs that did not had their low (909 to 2,985 wires) at iteration 14 to 25 and rose from
#   there for as long as they were left, or (the ULX3S-85F every-format, seed 6, at 80d8d05)
#   hovered at 2 to 30 wires from iteration 80 to 230 and then rose to 1,065 at iteration 301.
STALL_REPORTS = {"router1": 50, "router2": 25}
STALL_TAIL = 100


def _diverged(low, left):
    return left > 4 * low + 50


@dataclasses.dataclass
class _RouterLow:
    """A router's lowest report so far: what it had left, at which iteration and report."""
    router: str
    reports: int = 0
    low: int | None = None
    low_iteration: int = 0
    low_report: int = 0


class BuildProgress:
    """Feed it log lines (`feed`); `status` is one line for a person."""

    def __init__(self, *, last_seconds=None):
        self.phase = "starting"
        self.detail = ""
        self.estimate_mhz = None
        self.last_seconds = last_seconds
        self.started = time.monotonic()
        self.stalled = None         # once the router has stalled: a sentence saying how
        self._routing = None        # the current router's `_RouterLow`

    def feed(self, line):
        """Take one log line; True if the status changed."""
        before = (self.phase, self.detail, self.estimate_mhz)
        line = line.rstrip("\n")
        if m := _YOSYS_PASS.match(line):
            self.phase, self.detail = "synthesis", m.group(1)
        elif line.startswith("Info: Packing") or "Packing constants" in line:
            self.phase, self.detail = "packing", ""
        elif ("placer" in line.lower() and line.startswith("Info:") and "Running" in line) or (
                "initial analytic placement" in line):
            self.phase, self.detail = "placement", ""
        elif m := _FMAX.search(line):
            if self.estimate_mhz is None or self.phase == "placement":
                self.estimate_mhz = float(m.group(1))
        elif line.startswith("Info: Routing"):
            self.phase, self.detail = "routing", ""
        elif m := _ROUTER1.match(line):
            self.phase, self.detail = "routing", f"{int(m.group(2)):,} arcs left"
            self._track("router1", int(m.group(2)), "arcs left", int(m.group(1)))
        elif m := _ROUTER2.search(line):
            self.phase = "routing"
            self.detail = f"iteration {m.group(1)}, {int(m.group(3)):,} overused wires"
            self._track("router2", int(m.group(3)), "overused wires", int(m.group(1)))
        return (self.phase, self.detail, self.estimate_mhz) != before

    def _track(self, router, left, what, iteration):
        """Note a router's progress report; set `stalled` once it has stalled (see
        `STALL_REPORTS`)."""
        r = self._routing
        if r is None or r.router != router:
            r = self._routing = _RouterLow(router)
        r.reports += 1
        since = r.reports - r.low_report
        if r.low is None or left < r.low:
            r.low, r.low_iteration, r.low_report = left, iteration, r.reports
        elif self.stalled is None and (
                _diverged(r.low, left)
                or (r.low >= STALL_TAIL and since >= STALL_REPORTS[router])):
            self.stalled = (f"{router} stalled: its fewest {what} were {r.low:,} at iteration "
                            f"{r.low_iteration:,}, and {since} reports later (iteration "
                            f"{iteration:,}) {left:,}")

    def tool_started(self, tool):
        if "pack" in tool and "nextpnr" not in tool:
            self.phase, self.detail = "bitstream", tool

    @property
    def status(self):
        parts = [self.phase + (f" ({self.detail})" if self.detail else "")]
        if self.estimate_mhz is not None:
            parts.append(f"placed at an estimated {self.estimate_mhz:.1f} MHz")
        elapsed = time.monotonic() - self.started
        guide = f" of about {self.last_seconds:.0f} s last time" if self.last_seconds else ""
        parts.append(f"{elapsed:.0f} s{guide}")
        return ", ".join(parts)


class LogTail:
    """Follows the log files a build writes (they appear as each tool starts) on a thread and
    reports `BuildProgress.status` to ``report(status)`` as it changes, at most once every
    ``every`` seconds (and at least that often while nothing changes)."""

    def __init__(self, paths, progress, report, *, every=30.0, poll=0.5):
        self.paths, self.progress, self.report = list(paths), progress, report
        self.every, self.poll = every, poll
        self._offsets = {p: 0 for p in self.paths}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._read()

    def _read(self):
        changed = False
        for path in self.paths:
            try:
                with open(path, "rb") as f:
                    f.seek(self._offsets[path])
                    data = f.read()
            except FileNotFoundError:
                continue
            complete = data[:data.rfind(b"\n") + 1]
            self._offsets[path] += len(complete)
            for line in complete.decode(errors="replace").splitlines():
                changed |= self.progress.feed(line)
        return changed

    def _run(self):
        last = 0.0
        while not self._stop.wait(self.poll):
            changed = self._read()
            now = time.monotonic()
            if (changed and now - last >= min(self.every, 5.0)) or now - last >= self.every:
                self.report(self.progress.status)
                last = now
