"""Shared by the serial-link tests: a GEMM through the simulated board behind a pseudo-terminal,
opened by the same pyserial Link a real board's UART would use."""

import numpy as np

from systolica.host.driver import Driver
from systolica.host.link import SerialLink
from systolica.sim.pty_board import PtyBoard


def gemm_over_pty(config, n, k, m, seed):
    """Run one random (n×k)·(k×m) GEMM; assert IDENTIFY and the result; return the most bytes
    the host had in flight."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (n, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, m), dtype=np.int8)
    with PtyBoard(config) as board:
        drv = Driver(SerialLink(board.port, 3_000_000), timeout=20)
        try:
            assert drv.config == config
            np.testing.assert_array_equal(drv.gemm(a, w), a.astype(np.int64) @ w)
            return drv.session.credit.max_in_flight
        finally:
            drv.close()
