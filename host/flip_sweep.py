"""Single-bit flips over one small GEMM exchange on the simulated board, both directions: each
flip must end in the exact result (after a retry, when it did harm) or a clear error, never in
a wrong result.

``python -m systolica.host.flip_sweep`` (``make flips``) flips every bit of every byte; the test
suite runs a sample (``--step``).
"""

import argparse
import collections
import dataclasses
import sys
import time

import numpy as np

from systolica.config import Config

from .driver import Driver
from .faulty_link import BitFlipLink
from .frames import DeviceError, ProtocolError
from .link import LinkError, SimulatedBoardLink
from .progress import Progress

__all__ = ["SWEEP_CONFIG", "SweepResult", "sweep"]

# A 2x2 array behind a one-byte link, as behind a UART: every byte of a frame is one link word.
SWEEP_CONFIG = Config(rows=2, cols=2, link_bytes=1, act_depth=64, max_k=32, formats=("int8",),
                      rx_fifo_words=256)
DIRECTIONS = ("to_device", "from_device")


@dataclasses.dataclass
class SweepResult:
    exchange: dict                  # bytes each way of the unflipped exchange
    outcomes: collections.Counter   # (direction, outcome) -> flips
    retries: int = 0
    errors: list = dataclasses.field(default_factory=list)   # the first few clear errors

    def wrong(self):
        return sum(n for (_, outcome), n in self.outcomes.items() if outcome == "wrong result")

    def table(self):
        lines = [f"exchange: {self.exchange['to_device']} bytes to the device, "
                 f"{self.exchange['from_device']} back",
                 f"{'direction':12} {'outcome':28} {'flips':>6}"]
        for (direction, outcome), n in sorted(self.outcomes.items()):
            lines.append(f"{direction:12} {outcome:28} {n:6d}")
        lines.append(f"retries in all: {self.retries}; wrong results: {self.wrong()}")
        return "\n".join(lines)


def sweep(*, step=1, seed=0, timeout=0.3, quiet=0.05, config=SWEEP_CONFIG, progress=None):
    """Flip bit ``b`` of byte ``i`` for every ``i * 8 + b`` that is a multiple of ``step``, in
    each direction, one flip per run of the exchange (LOAD_A and GEMM of a 3x5 by 5x3 int8
    product, on one simulated board and one driver throughout)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (3, 5), dtype=np.int8)
    w = rng.integers(-128, 128, (5, 3), dtype=np.int8)
    want = a.astype(np.int64) @ w
    link = BitFlipLink(SimulatedBoardLink(config))
    try:
        driver = Driver(link, timeout=timeout, resync_quiet=quiet, retries=3)
        link.arm(None)
        if not np.array_equal(driver.gemm(a, w), want):
            raise AssertionError("the unflipped exchange is not exact")
        result = SweepResult(exchange=dict(link.bytes), outcomes=collections.Counter())
        flips = [(d, bit) for d in DIRECTIONS for bit in range(0, 8 * result.exchange[d], step)]
        for done, (direction, bit) in enumerate(flips):
            retries = driver.stats.retries
            link.arm(direction, bit // 8, bit % 8)
            try:
                got = driver.gemm(a, w)
            except (LinkError, ProtocolError, DeviceError) as exc:
                outcome = "clear error"
                if len(result.errors) < 5:
                    result.errors.append(f"{direction} byte {bit // 8} bit {bit % 8}: {exc}")
            else:
                if not np.array_equal(got, want):
                    outcome = "wrong result"
                elif driver.stats.retries > retries:
                    outcome = "exact after a retry"
                else:
                    outcome = "exact, no retry needed"
            if not link.flipped:
                outcome += " (flip not reached)"
            result.outcomes[direction, outcome] += 1
            if progress:
                progress(done + 1, len(flips))
        result.retries = driver.stats.retries
        return result
    finally:
        link.close()


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m systolica.host.flip_sweep",
        description="Flip every bit (or every STEP-th) of a small GEMM exchange, both ways, on "
                    "the simulated board; each flip must end exact or in a clear error.")
    parser.add_argument("--step", type=int, default=1,
                        help="flip every STEP-th bit only (default: every bit)")
    args = parser.parse_args(argv)
    if args.step < 1:
        parser.error(f"--step must be at least 1, not {args.step}")
    start = time.monotonic()
    bars = []

    def progress(done, total):
        if not bars:
            bars.append(Progress("flips", total))
        bars[0].advance(1)

    result = sweep(step=args.step, progress=progress)
    if bars:
        bars[0].__exit__()
    print(result.table())
    for error in result.errors:
        print("  e.g.", error)
    print(f"{time.monotonic() - start:.0f} s")
    return 1 if result.wrong() else 0


if __name__ == "__main__":
    sys.exit(main())
