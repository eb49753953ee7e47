"""The host driver against the simulated board (Verilator-built RTL on a pipe). Its tags, reply
checks, retries and pieces against a device in plain Python: tests/test_driver_recovery.py."""

import os
import signal
import time

import numpy as np
import pytest

from systolica.config import Config
from systolica.host.driver import Driver, RetriesExhausted
from systolica.host.frames import DeviceError
from systolica.host.link import LinkClosed, LinkTimeout, SimulatedBoardLink
from systolica.host.timed_link import TimedLink
from systolica.protocol import HEADER_BYTES, pack_header

CONFIGS = {
    "default": Config(),
    # Small buffers force the driver to split N (activation buffer) and K (max_k).
    "4x4-small-buffers": Config(rows=4, cols=4, link_bytes=4, act_depth=64, max_k=32,
                                rx_fifo_words=16),
    "1x1-byte-link": Config(rows=1, cols=1, link_bytes=1, act_depth=256, max_k=64,
                            rx_fifo_words=64),
}

SHAPES = {
    "default": [(64, 576, 64), (1, 1, 1), (7, 129, 9), (129, 9, 7), (1, 1536, 576)],
    "4x4-small-buffers": [(9, 7, 9), (33, 100, 5), (1, 64, 129)],
    "1x1-byte-link": [(3, 9, 2), (1, 129, 1)],
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def driver(request):
    drv = Driver(SimulatedBoardLink(CONFIGS[request.param]), timeout=20)
    drv.name = request.param
    yield drv
    drv.close()


def test_identify_reports_the_built_configuration(driver):
    assert driver.config == CONFIGS[driver.name]


def test_gemms_are_bit_exact(driver):
    rng = np.random.default_rng(7)
    for n, k, m in SHAPES[driver.name]:
        a = rng.integers(-128, 128, (n, k), dtype=np.int8)
        w = rng.integers(-128, 128, (k, m), dtype=np.int8)
        got = driver.gemm(a, w)
        np.testing.assert_array_equal(got, a.astype(np.int64) @ w.astype(np.int64))
    assert driver.stats.device_gemms >= len(SHAPES[driver.name])
    assert driver.stats.bytes_out > 0 and driver.stats.bytes_in > 0


def test_the_same_activations_are_loaded_once(driver):
    """GEMMs of the same A one after another (q, k and v of one input) send its LOAD_A once:
    the device keeps A; another A, or a resync, loads again. Every result exact."""
    rng = np.random.default_rng(11)
    a, b = (rng.integers(-128, 128, (3, 40), dtype=np.int8) for _ in range(2))
    ws = [rng.integers(-128, 128, (40, 5), dtype=np.int8) for _ in range(3)]
    st = driver.stats

    def run(x, w):
        skipped, act = st.loads_skipped, st.act_bytes_out
        np.testing.assert_array_equal(driver.gemm(x, w), x.astype(np.int64) @ w)
        return st.loads_skipped - skipped, st.act_bytes_out - act > 0

    # 4x4-small-buffers: K = 40 is two passes (max_k 32), each its own LOAD_A: never the same.
    once = driver.config.max_k >= 40
    assert run(a, ws[0]) == (0, True)
    assert run(a, ws[1]) == ((1, False) if once else (0, True))
    assert run(a, ws[2]) == ((1, False) if once else (0, True))
    assert run(b, ws[0]) == (0, True)
    driver.resync(0.01)
    assert run(b, ws[1]) == (0, True)


def test_extreme_values_over_long_k(driver):
    k = 1536
    a = np.full((3, k), -128, dtype=np.int8)
    w = np.full((k, 5), -128, dtype=np.int8)
    np.testing.assert_array_equal(driver.gemm(a, w), np.full((3, 5), 128 * 128 * k))


@pytest.mark.parametrize(("a", "w", "match"), [
    (np.zeros((2, 3), dtype=np.float32), np.zeros((3, 2), dtype=np.int8), "^a must have an integer"),
    (np.zeros((2, 3), dtype=np.int8), np.zeros((4, 2), dtype=np.int8), "a's columns must equal"),
    (np.zeros((2, 3), dtype=np.int16), np.full((3, 2), 300, dtype=np.int16), "^w has values"),
    (np.zeros(3, dtype=np.int8), np.zeros((3, 2), dtype=np.int8), "^a must be 2-D"),
    ([[1, 2]], np.zeros((2, 2), dtype=np.int8), "^a must be a numpy array"),
    (np.zeros((0, 3), dtype=np.int8), np.zeros((3, 2), dtype=np.int8), "^a must not be empty"),
])
def test_bad_operands_raise_value_error_naming_them(a, w, match):
    drv = Driver.__new__(Driver)     # argument checks come before any I/O
    with pytest.raises(ValueError, match=match):
        drv.gemm(a, w)


def test_device_error_reply_surfaces_and_device_stays_usable(driver):
    tag = driver.session.next_tag()
    driver._send(pack_header(0x7E, 1, tag=tag))           # 32 bytes: whole words on any link
    with pytest.raises(DeviceError, match="BAD_OPCODE"):
        driver._expect(0x7E, tag=tag)
    a = np.ones((2, 3), dtype=np.int8)
    np.testing.assert_array_equal(driver.gemm(a, np.ones((3, 4), dtype=np.int8)),
                                  np.full((2, 4), 3))


class _SlowHost(TimedLink):
    """A host that dawdles before every write and every wait, as a busy machine would."""

    def write(self, data):
        time.sleep(0.002)
        return super().write(data)

    def read_some(self, timeout, want=1):
        time.sleep(0.002)
        return super().read_some(timeout, want)


@pytest.mark.parametrize("name", ["default", "4x4-small-buffers"])
def test_device_cycles_do_not_depend_on_the_host(name):
    # The small receive buffer makes the host wait for credit many times within one GEMM.
    n, k, m = SHAPES[name][1 if name == "4x4-small-buffers" else 2]
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (n, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, m), dtype=np.int8)
    counts = []
    for slow in (False, True):
        link = SimulatedBoardLink(CONFIGS[name])
        with Driver(_SlowHost(link) if slow else link, timeout=20) as drv:
            np.testing.assert_array_equal(drv.gemm(a, w), a.astype(np.int64) @ w)
            counts.append(drv.stats.device_cycles)
    assert counts[0] == counts[1] > 0


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_board_that_dies_gives_clear_error():
    link = SimulatedBoardLink(Config())
    drv = Driver(link, timeout=5)
    link.kill()
    with pytest.raises(LinkClosed, match="exited with status"):
        drv.gemm(np.ones((4, 4), dtype=np.int8), np.ones((4, 4), dtype=np.int8))
    drv.close()
    assert not _alive(link.pid)


def test_board_that_stops_answering_times_out_without_orphan():
    """A board that stops (reading and writing): a clear error within seconds, whether the
    driver is waiting for a reply or for the board to take its bytes, retries or not."""
    link = SimulatedBoardLink(Config())
    link.write_timeout = 1.0
    drv = Driver(link, timeout=1.0, resync_quiet=0.1)
    os.kill(link.pid, signal.SIGSTOP)
    start = time.monotonic()
    try:
        with pytest.raises((LinkTimeout, LinkClosed, RetriesExhausted),
                           match=r"stopped answering|no reply|took no input|stopped taking"):
            drv.gemm(np.ones((64, 2048), dtype=np.int8), np.ones((2048, 64), dtype=np.int8))
        assert time.monotonic() - start < 20
    finally:
        os.kill(link.pid, signal.SIGCONT)
        drv.close()
    assert not _alive(link.pid)


def test_resync_starts_the_conversation_over(driver):
    """After an unread error reply and half a frame in the reader, `resync` drops both,
    IDENTIFYs again with a fresh credit window, and the next GEMM is exact."""
    cfg = driver.config
    driver._send(pack_header(0x7E, 1, tag=driver.session.next_tag()))   # its reply: never read
    driver.session.feed(bytes([0xA5, 0x81, 0x00]))                      # a frame cut short
    before = driver.stats.resyncs
    last_tag = driver.session.last_tag
    assert driver.resync() == cfg
    assert driver.stats.resyncs == before + 1
    assert driver.stats.discarded_in >= 3 + HEADER_BYTES
    assert driver.session.last_tag == last_tag % 255 + 1     # tags go on (IDENTIFY took one)
    a = np.arange(6, dtype=np.int8).reshape(2, 3)
    w = np.ones((3, 4), dtype=np.int8)
    np.testing.assert_array_equal(driver.gemm(a, w), a.astype(np.int64) @ w)
