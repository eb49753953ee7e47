"""Build progress read from the tools' logs: the phases, placement's estimate and what the router
has left, as the lines nextpnr and Yosys write them; and a log followed while it grows."""

import io
import os
import time

import pytest

from systolica.boards.build import run_script
from systolica.boards.build_progress import STALL_REPORTS, BuildProgress, LogTail

# Lines as Yosys -l and nextpnr --log write them (an iCE40 build of this design, router1; and
# router2's iteration line from an ECP5 build).
LOG = [
    ("2.23. Executing ABC pass (technology mapping using ABC).", "synthesis (ABC)"),
    ("Info: Packing constants..", "packing"),
    ("Info: Creating initial analytic placement for 3663 cells, random placement wirelen = 11.",
     "placement"),
    ("Info:     at iteration #1, type ALL: wirelen solved = 1117, spread = 43235, legal = 64090; "
     "time = 1.40s", "placement"),
    ("Info: Max frequency for clock 'accel.adapter.clk': 32.60 MHz (PASS at 30.02 MHz)",
     "placement, placed at an estimated 32.6 MHz"),
    ("Info: Routing..", "routing, placed at an estimated 32.6 MHz"),
    ("Info:       1000 |      131        868 |  131   868 |     12738|       1.18       1.18|",
     "routing (12,738 arcs left), placed at an estimated 32.6 MHz"),
    ("Info:     iter=7 wires=180321 overused=2345 overuse=4567 archfail=NA",
     "routing (iteration 7, 2,345 overused wires), placed at an estimated 32.6 MHz"),
    # The final report's Fmax after routing does not replace placement's estimate.
    ("Info: Max frequency for clock 'accel.adapter.clk': 34.30 MHz (PASS at 30.02 MHz)",
     "routing (iteration 7, 2,345 overused wires), placed at an estimated 32.6 MHz"),
]


def test_phases_estimate_and_routing_left_from_the_logs():
    progress = BuildProgress(last_seconds=86)
    for line, want in LOG:
        progress.feed(line)
        assert progress.status.startswith(want + ", "), (line, progress.status)
        assert progress.status.endswith(" s of about 86 s last time")
    progress.tool_started("yowasp-icepack")
    assert progress.status.startswith("bitstream (yowasp-icepack)")


def test_unrelated_lines_change_nothing():
    progress = BuildProgress()
    assert not progress.feed("Info: constrained 'clk12_0__io' to bel 'X12/Y31/io1'")
    assert progress.status.startswith("starting, ") and "last time" not in progress.status


def test_log_tail_follows_a_growing_log(tmp_path):
    path = tmp_path / "systolica.tim"
    seen = []
    with LogTail([path, tmp_path / "not-yet.rpt"], BuildProgress(), seen.append, every=0.05,
                 poll=0.01) as tail:
        path.write_text("Info: Routing..\nInfo:       1000 |  1  2 |  3  4 |      5")
        time.sleep(0.2)
        with path.open("a") as f:
            f.write("00|  1.0  1.0|\n")        # the half line completes
        time.sleep(0.2)
    assert tail.progress.detail == "500 arcs left"
    assert any(s.startswith("routing") for s in seen)


def _router2(iteration, overused):
    return f"Info:     iter={iteration} wires=180321 overused={overused} overuse=1 archfail=NA"


# Overused wires per router2 iteration, shaped like runs measured here: one that routes after a
# plateau of 20 iterations above its low; one whose low is 2,000 at iteration 10 and that rises
# from there (the ECP5 runs that did not route); one whose tail sits at 1 to 3 wires for 48
# iterations and then routes (the ECPIX-5, HeAP seed 1, at 80d8d05); one whose tail hovers at a
# few wires and then climbs (the ULX3S-85F every-format, seed 6, at 80d8d05).
ROUTES = [3000 - 100 * i for i in range(20)] + [1100 + i for i in range(20)] + [900, 10, 0]
STALLS = [3000 - 100 * i for i in range(11)] + [2000 + 40 * i for i in range(40)]
LONG_TAIL = [3000 // (i + 1) for i in range(60)] + [1] * 30 + [2, 3, 2, 1] * 5 + [0]
CLIMBS = [3000 // (i + 1) for i in range(60)] + [5, 9, 20, 40, 54, 80, 200]


@pytest.mark.parametrize(("counts", "stalled_at", "want"), [
    (ROUTES, None, None),
    (STALLS, 10 + STALL_REPORTS["router2"], "its fewest overused wires were 2,000 at iteration 10, "
                                            "and 25 reports later (iteration 35) 2,960"),
    (LONG_TAIL, None, None),
    (CLIMBS, 65, "its fewest overused wires were 5 at iteration 60, and 5 reports later "
                 "(iteration 65) 80"),
])
def test_a_router_stalls_without_a_new_low_or_when_it_climbs(counts, stalled_at, want):
    progress = BuildProgress()
    for iteration, overused in enumerate(counts):
        progress.feed(_router2(iteration, overused))
        if stalled_at is None or iteration < stalled_at:
            assert progress.stalled is None, iteration
        elif iteration == stalled_at:
            assert progress.stalled == f"router2 stalled: {want}"


def test_router1_stalls_on_arcs_left():
    progress = BuildProgress()
    for n in range(STALL_REPORTS["router1"] + 1):
        progress.feed(f"Info: {1000 * (n + 1):>10} |  1  2 |  3  4 | {30000 + n:>9}|  1.0  1.0|")
    assert progress.stalled.startswith("router1 stalled: its fewest arcs left were 30,000 at "
                                       "iteration 1,000")


def test_a_stalled_build_is_stopped(tmp_path):
    # A build script whose "router" stalls and then would run on for ten minutes.
    lines = "\\n".join(_router2(i, 100 if i < 3 else 200) for i in range(40))
    (tmp_path / "build_systolica.sh").write_text(
        f"printf '{lines}\\n' > systolica.tim\nsleep 600\n")
    log = io.StringIO()
    started = time.monotonic()
    code, _, stalled = run_script("build_systolica.sh", tmp_path, dict(os.environ), log)
    assert time.monotonic() - started < 60
    assert code != 0
    assert stalled.startswith("router2 stalled: its fewest overused wires were 100")
    assert "stopping the build" in log.getvalue()
