"""The host driver against a device in plain Python (`python_board`; no build needed): command
tags, replies that do not answer the command, retries and resyncs after damage, and GEMMs cut
into pieces (`max_payload`)."""

import re

import numpy as np
import pytest
from python_board import PythonBoard

from systolica.config import Config
from systolica.host.driver import Driver, RetriesExhausted
from systolica.host.frames import CorruptReply, DeviceError, ProtocolError
from systolica.protocol import HEADER_BYTES, MAGIC, Op, Status, pack_header, unpack_header

PY_CFG = Config(rows=2, cols=3, link_bytes=4, act_depth=64, max_k=32, rx_fifo_words=64)


@pytest.mark.parametrize("last_tag", [0, 250])
def test_every_command_gets_the_next_tag(last_tag):
    """IDENTIFY, then each LOAD_A and GEMM of a split GEMM, each with the next tag (1..255, in
    turn: 0 is CREDIT's); every reply is checked against its command's tag."""
    board = PythonBoard(PY_CFG)
    drv = Driver(board, timeout=1)
    drv.session.last_tag = last_tag
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (5, 40), dtype=np.int8)     # 2 row blocks x 2 passes along K
    w = rng.integers(-128, 128, (40, 7), dtype=np.int8)
    np.testing.assert_array_equal(drv.gemm(a, w), a.astype(np.int64) @ w)
    ops, tags = zip(*board.commands, strict=True)
    assert ops == (Op.IDENTIFY, *(Op.LOAD_A, Op.GEMM) * 4)
    assert tags == (1, *((last_tag + i) % 255 + 1 for i in range(8)))


def _retag(op_to_change, delta):
    def tamper(op, data):
        if op != op_to_change:
            return data
        h = unpack_header(data[:HEADER_BYTES])
        return pack_header(h.op, *h.args, status=h.status, tag=(h.tag + delta) % 256,
                           length=h.length) + data[HEADER_BYTES:]
    return tamper


def _flip_payload(op_to_change):
    def tamper(op, data):
        if op != op_to_change:
            return data
        data = bytearray(data)
        data[HEADER_BYTES] ^= 0x01
        return bytes(data)
    return tamper


# The first GEMM after IDENTIFY (tag 1): its LOAD_A has tag 2, the GEMM tag 3.
# A reply with a tag sent before is a late answer to an earlier command: dropped and counted
# (`stale`). One with a tag not yet sent is the device's error.
@pytest.mark.parametrize(("tamper", "gemm_status", "error", "match", "bad_payloads", "stale"), [
    (_retag(Op.LOAD_A, 1), Status.OK, ProtocolError,
     "LOAD_A sent with tag 2, got one with tag 3", 0, 0),
    (_retag(Op.RESULT, -1), Status.OK, ProtocolError,
     "RESULT tiles did not cover the output exactly once", 0, 3),
    (_retag(Op.GEMM, 5), Status.OK, ProtocolError, "tag 8 during the GEMM sent with tag 3", 0, 0),
    (_flip_payload(Op.RESULT), Status.OK, CorruptReply,
     r"RESULT \(0, 0\) of GEMM tag 3: payload CRC wrong", 1, 0),
    (None, Status.BAD_CRC, DeviceError, "GEMM: BAD_CRC", 0, 0),
])
def test_replies_that_do_not_answer_the_command_raise(tamper, gemm_status, error, match,
                                                      bad_payloads, stale):
    """Every try gets the same bad reply: after the retries, an error naming each try's."""
    drv = Driver(PythonBoard(PY_CFG, tamper=tamper, gemm_status=gemm_status), timeout=1,
                 retries=2, resync_quiet=0.01)
    with pytest.raises(RetriesExhausted, match="failed 3 times") as info:
        drv.gemm(np.ones((2, 3), dtype=np.int8), np.ones((3, 2), dtype=np.int8))
    assert isinstance(info.value.__cause__, error)
    assert re.search(match, str(info.value)), str(info.value)   # the first try's, named
    assert drv.stats.retries == 2 and drv.stats.resyncs == 2
    assert drv.session.reader.bad_payloads == bad_payloads      # (the last session's)
    assert drv.stats.stale_replies == stale


def _once(tamper):
    """``tamper`` for the first frame it changes only."""
    done = []

    def first(op, data):
        changed = tamper(op, data)
        if changed != data and not done:
            done.append(op)
            return changed
        return data
    return first


@pytest.mark.parametrize("tamper", [_retag(Op.LOAD_A, 1), _retag(Op.RESULT, -1),
                                    _flip_payload(Op.RESULT), _retag(Op.GEMM, 5)])
def test_a_damaged_exchange_is_tried_again_and_the_result_is_exact(tamper):
    drv = Driver(PythonBoard(PY_CFG, tamper=_once(tamper)), timeout=1, resync_quiet=0.01)
    rng = np.random.default_rng(2)
    a = rng.integers(-128, 128, (5, 40), dtype=np.int8)
    w = rng.integers(-128, 128, (40, 7), dtype=np.int8)
    np.testing.assert_array_equal(drv.gemm(a, w), a.astype(np.int64) @ w)
    assert drv.stats.retries == 1


def test_after_retries_run_out_the_next_command_resyncs_first():
    """Every RESULT and every IDENTIFY reply after the first is damaged: the GEMM's tries and
    their resyncs all fail, and the session is left mid-IDENTIFY. The line then comes clean: the
    next GEMM resynchronizes before its first try (no retry, no timeout) and is exact."""
    def damage(op, data):
        if op == Op.IDENTIFY and not damage.first:
            return _flip_payload(Op.IDENTIFY)(op, data)
        damage.first = False
        return _flip_payload(Op.RESULT)(op, data)
    damage.first = True
    board = PythonBoard(PY_CFG, tamper=damage)
    drv = Driver(board, timeout=1, retries=2, resync_quiet=0.01)
    a = np.ones((2, 3), dtype=np.int8)
    with pytest.raises(RetriesExhausted, match="failed 3 times"):
        drv.gemm(a, a.T.copy())
    board.tamper = None
    retries, resyncs = drv.stats.retries, drv.stats.resyncs
    np.testing.assert_array_equal(drv.gemm(a, a.T.copy()), np.full((2, 2), 3))
    assert (drv.stats.retries, drv.stats.resyncs) == (retries, resyncs + 1)


def test_a_duplicated_reply_is_dropped_without_a_retry():
    """Each LOAD_A reply arrives twice: the copy, read while the GEMM's replies are awaited,
    answers an earlier command and is dropped."""
    board = PythonBoard(PY_CFG, tamper=lambda op, data: data + data if op == Op.LOAD_A else data)
    drv = Driver(board, timeout=1, resync_quiet=0.01)
    a = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    w = np.arange(-10, 10, dtype=np.int8).reshape(4, 5)
    np.testing.assert_array_equal(drv.gemm(a, w), a.astype(np.int64) @ w)
    loads = [op for op, _ in board.commands].count(Op.LOAD_A)
    assert loads >= 1 and drv.stats.stale_replies == loads and drv.stats.retries == 0


# (max_payload, N, K, M) → (LOAD_As, device GEMMs after each): pieces of whole row tiles of A
# and column tiles of W whose payloads fit max_payload, else of single rows and columns; the
# weights cross once per piece of A. On PY_CFG (2x3, 4-byte link) a column tile of K=32 is 32
# vectors padded to one word: 128 bytes; a row tile packs its 2-byte vectors two to a word: 64.
PIECES = [(None, 3, 32, 23, 1, 1), (96, 3, 32, 23, 2, 23), (128 * 3, 3, 32, 23, 1, 3),
          (128 * 3 + 127, 3, 32, 23, 1, 3), (1, 3, 32, 23, 3, 23), (10**9, 3, 32, 23, 1, 1),
          (128 * 2, 7, 32, 5, 2, 1), (128, 7, 32, 5, 2, 2), (63, 7, 32, 5, 7, 5)]


@pytest.mark.parametrize(("max_payload", "n", "k", "m", "loads", "gemms"), PIECES)
def test_max_payload_cuts_loads_and_gemms_into_pieces_that_fit(max_payload, n, k, m,
                                                                     loads, gemms):
    board = PythonBoard(PY_CFG)
    drv = Driver(board, timeout=1, max_payload=max_payload)
    rng = np.random.default_rng(gemms)
    a = rng.integers(-128, 128, (n, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, m), dtype=np.int8)
    np.testing.assert_array_equal(drv.gemm(a, w), a.astype(np.int64) @ w)
    assert [op for op, _ in board.commands][1:] == ([Op.LOAD_A] + [Op.GEMM] * gemms) * loads


def test_a_byte_duplicated_on_the_way_is_a_damaged_exchange_tried_again():
    """The device then counts one byte more than the host sent (its CREDIT says so): the
    exchange is tried again after a resync, not taken as the device's fault. (The copy of a
    frame's last byte, which is not the magic byte here, is skipped by the device.)"""
    board = PythonBoard(Config(rows=2, cols=3, link_bytes=1, act_depth=64, max_k=32,
                               rx_fifo_words=256))
    write, armed = board.write, []

    def duplicate_once(data):
        if armed and data:
            armed.clear()
            assert data[-1] != MAGIC
            data = data + data[-1:]
        write(data)

    board.write = duplicate_once
    drv = Driver(board, timeout=1, resync_quiet=0.01)
    armed.append(True)
    a = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    w = np.arange(-10, 10, dtype=np.int8).reshape(4, 5)
    np.testing.assert_array_equal(drv.gemm(a, w), a.astype(np.int64) @ w)
    assert drv.stats.retries == 1 and not armed


def test_max_payload_below_a_tile_takes_part_of_one():
    """On a 1-byte link a 4x4 device's row of K=32 is 32 bytes: 100 bytes take 3 of a tile's 4
    rows (and columns)."""
    board = PythonBoard(Config(rows=4, cols=4, link_bytes=1, act_depth=64, max_k=32,
                               rx_fifo_words=256))
    drv = Driver(board, timeout=1, max_payload=100)
    assert drv.plan(7, 32, 5) == (3, 32, 3)
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (7, 32), dtype=np.int8)
    w = rng.integers(-128, 128, (32, 5), dtype=np.int8)
    np.testing.assert_array_equal(drv.gemm(a, w), a.astype(np.int64) @ w)
    assert [op for op, _ in board.commands][1:] == [Op.LOAD_A, Op.GEMM, Op.GEMM] * 3


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(max_payload=0), "max_payload must be a positive integer or None, not 0"),
    (dict(max_payload=2.5), "max_payload"), (dict(retries=-1), "retries must be a non-negative"),
])
def test_bad_driver_options_are_refused_before_the_link_is_used(kwargs, match):
    board = PythonBoard(PY_CFG)
    with pytest.raises(ValueError, match=match):
        Driver(board, **kwargs)
    assert board.received == 0


def test_identify_reply_with_a_damaged_payload_is_refused():
    with pytest.raises(RetriesExhausted, match="IDENTIFY failed 2 times; try 1: CorruptReply: "
                       "IDENTIFY reply of tag 1: payload CRC wrong") as info:
        Driver(PythonBoard(PY_CFG, tamper=_flip_payload(Op.IDENTIFY)), timeout=1, retries=1,
               resync_quiet=0.01)
    assert isinstance(info.value.__cause__, CorruptReply)


def test_first_identify_is_retried():
    drv = Driver(PythonBoard(PY_CFG, tamper=_once(_flip_payload(Op.IDENTIFY))), timeout=1,
                 resync_quiet=0.01)
    assert drv.config == PY_CFG and drv.stats.retries == 1


def test_a_device_that_lost_its_activations_gets_them_again():
    """The driver skips a LOAD_A of the activations the device holds; if the device has lost
    them meanwhile (reset), the GEMM's NOT_LOADED is tried again with A loaded first."""
    board = PythonBoard(PY_CFG)
    drv = Driver(board, timeout=1, resync_quiet=0.01)
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (2, 8), dtype=np.int8)
    w = rng.integers(-128, 128, (8, 3), dtype=np.int8)
    np.testing.assert_array_equal(drv.gemm(a, w), a.astype(np.int64) @ w)
    board.a = None                      # the device forgets A
    np.testing.assert_array_equal(drv.gemm(a, w), a.astype(np.int64) @ w)
    assert (drv.stats.loads_skipped, drv.stats.retries) == (1, 1)
