"""Fuzzing the accelerator's link: bursts of malformed frames among valid commands, in cocotb
(tests/cocotb_fuzz.py has what is sent and how the replies are judged).

Two configurations, test_accelerator's "1x1" (a 1-byte link, as behind the iCEBreaker's UART)
and "4x4" (a 4-byte link); both carry the block formats. They are the same builds as
test_accelerator's (built once in `make test`). Environment:

* ``SYSTOLICA_FUZZ_FRAMES``: malformed frames to try on each configuration (default 150);
* ``SYSTOLICA_FUZZ_SEED``: the seed (default 1; each configuration mixes its name in);
* ``SYSTOLICA_FUZZ_ABORT_CYCLES``: builds of their own with this idle abort instead of 5000
  cycles (the wait after a burst that ends inside a frame; for long runs);
* ``SYSTOLICA_FUZZ_REPLAY``: a burst's bytes as hex (from a failure's report), sent first
  (with ``SYSTOLICA_FUZZ_FRAMES=0``: alone); select the configuration with ``-k``.

A failure names the seed and the burst; the burst's bytes are in the JSON report under the
test's tmp_path (its path is printed).
"""

import dataclasses
import json
import os
import pathlib
import time
import zlib

import pytest
from cocotb_tools.check_results import get_results
from test_accelerator import CONFIGS as ACCELERATOR_CONFIGS

from systolica.sim import cocotb_build

TESTS = pathlib.Path(__file__).resolve().parent

ABORT_CYCLES = os.environ.get("SYSTOLICA_FUZZ_ABORT_CYCLES")

CONFIGS = {name: ACCELERATOR_CONFIGS[name] if ABORT_CYCLES is None else
           dataclasses.replace(ACCELERATOR_CONFIGS[name], abort_cycles=int(ABORT_CYCLES))
           for name in ("1x1", "4x4")}

# (idle, backpressure) of the host's side of the link.
TIMING = {"1x1": (0.05, 0.2), "4x4": (0.2, 0.3)}

FRAMES = int(os.environ.get("SYSTOLICA_FUZZ_FRAMES", "150"))
SEED = int(os.environ.get("SYSTOLICA_FUZZ_SEED", "1"))
REPLAY = os.environ.get("SYSTOLICA_FUZZ_REPLAY", "")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fuzz(name, tmp_path):
    config = CONFIGS[name]
    report = tmp_path / "fuzz.json"
    idle, backpressure = TIMING[name]
    seed = (SEED * 1_000_003 + zlib.crc32(name.encode())) & 0xFFFFFFFF
    case = dict(name=name, frames=FRAMES, seed=seed, idle=idle, backpressure=backpressure,
                report=str(report), replay=REPLAY)
    started = time.time()
    build = cocotb_build.build(config)
    built = time.time()
    try:
        xml = build.run("cocotb_fuzz", TESTS, case, testcase="fuzz")
    except SystemExit:            # the runner exits when a test fails under pytest
        xml, (total, failed) = "(the runner exited)", (1, 1)
    else:
        total, failed = get_results(xml)
    assert report.exists(), f"cocotb fuzz wrote no report ({failed} of {total} failed; {xml})"
    fig = json.loads(report.read_text())
    # Shown with -s, or with -rA (also under -n), and with a failure.
    print(f"\nfuzz {name} ({config.label()}), seed {seed}: {fig['frames_tried']} malformed "
          f"frames in {fig['bursts']} bursts (+{fig['valid_in_bursts']} valid commands in "
          f"them); hangs {fig['hangs']}, wrong results {fig['wrong_results']}, anomalies "
          f"{fig['anomalies']}; {fig['checked_gemms']} GEMMs checked exactly")
    print(f"  frames per kind: {fig['kinds']}")
    print(f"  replies per status: {fig['statuses']}")
    print(f"  replies per op and status: {fig['op_statuses']}")
    print(f"  host's longest credit stall {fig['max_host_stall']} cycles (idle abort "
          f"{fig['abort_cycles']}); {fig['cycles']} cycles simulated, {fig['fence_cycles']} of "
          f"them from a burst's last byte to the IDENTIFY after it; build "
          f"{built - started:.0f} s, fuzz {fig['wall_seconds']} s ({fig['cpu_seconds']} s "
          f"of CPU, {fig['host_cpu_seconds']} s of it making bursts and judging replies)")
    for failure in fig["failures"][:5]:
        print(f"  {failure['kind']}: {failure['message']}")
        print(f"    frames: {failure.get('frames', '-')}")
    if fig["failures"]:
        print(f"  report (with the bursts' bytes): {report}")
    for kind in ("hangs", "wrong_results", "anomalies"):
        first = next((f["message"] for f in fig["failures"] if f["kind"] == kind), "")
        assert fig[kind] == 0, f"{fig[kind]} {kind}; the first: {first}"
    assert fig["frames_tried"] >= FRAMES
    assert not fig["error"], fig["error"]
    # The host's longest wait for credit while the device had nothing buffered (the device's
    # CREDIT frames queue behind its replies) must stay far below the idle abort, or valid frames
    # would be cut off.
    assert fig["max_host_stall"] < config.abort_cycles // 4
    assert total >= 1 and failed == 0, f"cocotb fuzz: {failed} of {total} failed; see {xml}"
