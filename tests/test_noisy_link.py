"""GEMMs on the simulated board through the faulty link (issue 18): every GEMM ends exact, after
as many retries as it takes, or in a clear error (`RetriesExhausted`), never in a wrong result.

The fast representative in `make test` of `systolica run-layer --flip-rate ...` (a whole layer
through the same link, minutes to an hour) and of the exhaustive single-bit sweep (`make flips`).
"""

import dataclasses

import numpy as np
import pytest

from systolica.host.driver import Driver, RetriesExhausted
from systolica.host.faulty_link import FaultRates, FaultyLink
from systolica.host.flip_sweep import SWEEP_CONFIG
from systolica.host.frames import gemm_command
from systolica.host.link import SimulatedBoardLink

GEMMS = 10

# (name, rates): byte error rates high enough that most GEMMs of a few hundred bytes meet a
# fault, low enough that nine tries nearly always get one through.
CASES = [
    ("bit flips", FaultRates(flip=3e-3)),
    ("drops, duplicates, delays", FaultRates(drop=1e-3, duplicate=1e-3, delay=1e-3)),
    ("all four", FaultRates(flip=1e-3, drop=3e-4, duplicate=3e-4, delay=3e-4)),
]


# The same device without an idle abort (as on the iCEBreaker): a frame cut off on the way is
# completed by the host's resync (`frame_fill`), not dropped by the device.
NO_ABORT_CONFIG = dataclasses.replace(SWEEP_CONFIG, abort_cycles=0)


@pytest.fixture(scope="module")
def board():
    link = SimulatedBoardLink(SWEEP_CONFIG)
    yield link
    link.close()


@pytest.fixture(scope="module")
def no_abort_board():
    link = SimulatedBoardLink(NO_ABORT_CONFIG)
    yield link
    link.close()


def _shapes(rng):
    for _ in range(GEMMS):
        n, k, m = (int(v) for v in rng.integers(1, [9, 33, 9]))
        yield (rng.integers(-128, 128, (n, k), dtype=np.int8),
               rng.integers(-128, 128, (k, m), dtype=np.int8))


@pytest.mark.parametrize(("name", "rates"), CASES, ids=[c[0] for c in CASES])
def test_gemms_are_exact_or_refused(board, name, rates):
    link = FaultyLink(board, to_device=rates, from_device=rates, seed=len(name))
    driver = Driver(link, timeout=1.0, resync_quiet=0.1, retries=8, max_payload=64)
    driver.resync(0.1)             # the previous case may have left a frame half sent
    outcomes = {"exact": 0}
    refusals = []
    for a, w in _shapes(np.random.default_rng(len(name))):
        try:
            got = driver.gemm(a, w)
        except RetriesExhausted as exc:
            refusals.append(str(exc))
            continue
        assert np.array_equal(got, a.astype(np.int64) @ w), \
            f"{name}: a wrong result for {a.shape} x {w.shape} after {driver.stats.retries} retries"
        outcomes["exact"] += 1
    outcomes["refused"] = len(refusals)
    assert all("failed 9 times" in text for text in refusals), refusals
    faults = sum(sum(link.faults[d].values()) for d in link.faults)
    print(f"{name}: {outcomes}; {faults} faults, {driver.stats.retries} retries, "
          f"{driver.stats.resyncs} resyncs")
    assert faults > 0 and driver.stats.retries > 0, "the faults never struck: the test is void"
    assert outcomes["exact"] >= GEMMS // 2, outcomes


def test_without_an_idle_abort_a_resync_completes_a_cut_frame(no_abort_board):
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (4, 32), dtype=np.int8)
    w = rng.integers(-128, 128, (32, 8), dtype=np.int8)
    driver = Driver(no_abort_board, timeout=1.0, resync_quiet=0.1, retries=0)
    assert np.array_equal(driver.gemm(a, w), a.astype(np.int64) @ w)
    # A GEMM frame of which only the first quarter arrives: the device waits for the rest, and
    # without the fill it would take the resync's IDENTIFY for part of it and never answer.
    frame = gemm_command(w, len(a), NO_ABORT_CONFIG)
    no_abort_board.write(frame[:len(frame) // 4])
    driver.resync(0.1)
    assert driver.stats.fill_bytes_out >= len(frame)
    assert np.array_equal(driver.gemm(a, w), a.astype(np.int64) @ w)


def test_a_dead_line_ends_in_a_clear_error(board):
    link = FaultyLink(board, from_device=FaultRates(flip=0.3), seed=1)
    with pytest.raises(RetriesExhausted, match=r"IDENTIFY failed 3 times; try 1: .*; try 3: "):
        Driver(link, timeout=0.5, resync_quiet=0.05, retries=2)
