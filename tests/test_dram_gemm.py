# amaranth: UnusedElaboratable=no
"""Weights resident in the simulated board's DRAM (issue 19): the accelerator's RTL with
LiteDRAM's controller and DRAM model behind its ``dram`` port (`AcceleratorWithDram`), built by
Verilator, driven by the host driver.

Each case stores weights with WRITE_DRAM (`Driver.store_gemm_weights`) and multiplies them with
GEMM_DRAMs: bit-exact against numpy (int8) or the block model (`block_gemm_reference`), and
equal to the same GEMM streamed over the link. A stored payload overwritten in the DRAM fails
its CRC check (`StoredWeightsCorrupt`) until the weights are stored again; commands the device
must refuse get its error replies. The host side alone, against a device in Python:
tests/test_dram_driver.py. The first run builds the board (a few minutes), later runs reuse it.
"""

import dataclasses
import time

import numpy as np
import pytest
from amaranth.hdl import Fragment
from block_data import random_activations, random_blocks
from link_recorder import Recorder, result_frames

from systolica import cli
from systolica.config import Config
from systolica.fp32_model import f32_add, f32_order_key
from systolica.host.block_formats import FORMATS, block_gemm_reference
from systolica.host.driver import Driver, StoredWeightsCorrupt
from systolica.host.frames import DeviceError, dram_check_command, write_dram_command
from systolica.host.link import SimulatedBoardLink
from systolica.host.stored_weights import StoredGemm, layout
from systolica.protocol import (
    DRAM_WORD_BYTES,
    MAX_WRITE_DRAM,
    PAIR_SUM,
    Format,
    Op,
    Status,
    crc_word,
    pack_header,
)
from systolica.rtl.accelerator_dram import AcceleratorWithDram
from systolica.sim import board, verilog

CFG = Config(dram_mib=512)          # the simulated board's defaults, with the ECPIX-5's DRAM
DRAM_BYTES = CFG.dram_mib << 20


@pytest.fixture(scope="module")
def driver():
    started = time.monotonic()
    link = Recorder(SimulatedBoardLink(CFG))    # builds the board unless it is cached
    print(f"\nsimulated board with DRAM ready in {time.monotonic() - started:.0f} s")
    drv = Driver(link, timeout=120)
    yield drv
    drv.close()
    print(f"\n{link.stats}")


def test_identify_reports_the_dram(driver):
    assert driver.config == CFG and driver.config.dram_mib == 512


def _top(size):
    """An address where ``size`` bytes end at the DRAM's last byte."""
    return DRAM_BYTES - size


# name: (format, N, K, M, where the weights go: an address, or "top" to end at the DRAM's end)
CASES = {
    "int8": ("int8", 3, 40, 17, 0),
    "int8-two-k-passes": ("int8", 5, 2100, 20, 1 << 20),
    "int8-top-of-dram": ("int8", 2, 64, 33, "top"),
    "q8_0": ("q8_0", 3, 64, 40, 16 << 20),
    "q4_0": ("q4_0", 2, 96, 33, 17 << 20),
    "q4_1": ("q4_1", 4, 576, 48, 18 << 20),
    # one-block tiles back to back: a tile's results stay in their bank (`ScaleUnit`)
    "q4_0-one-block": ("q4_0", 2, 32, 40, 19 << 20),
    "q4_1-decode": ("q4_1", 1, 1536, 64, 100 << 20),
    # 1.3 MB stored (two WRITE_DRAMs), read for longer than the idle abort's 65536 cycles
    "q4_1-longer-than-the-idle-abort": ("q4_1", 1, 2048, 1024, 120 << 20),
}


def _operands(fmt, n, k, m, seed):
    rng = np.random.default_rng(seed)
    if fmt == "int8":
        a = rng.integers(-128, 128, (n, k), dtype=np.int8)
        w = rng.integers(-128, 128, (k, m), dtype=np.int8)
        return (a,), w, a.astype(np.int64) @ w
    xq, xd = random_activations(rng, n, k)
    raw = random_blocks(FORMATS[fmt], m, k // 32, rng)
    return (xq, xd), raw, block_gemm_reference(xq, xd, raw, fmt)


def _multiply(driver, fmt, acts, weights):
    """The GEMM's result as it compares with the reference: int64, or binary32 patterns."""
    if fmt == "int8":
        return driver.gemm(*acts, weights)
    got = driver.gemm_blocks(*acts, weights, None if not isinstance(weights, np.ndarray) else fmt)
    return got.view(np.uint32)


def _cycles(driver, run):
    before = driver.stats.device_cycles
    out = run()
    return out, driver.stats.device_cycles - before


@pytest.mark.parametrize("name", list(CASES))
def test_gemm_from_dram_is_exact_and_equals_the_streamed_gemm(driver, name, capsys):
    fmt, n, k, m, address = CASES[name]
    acts, weights, want = _operands(fmt, n, k, m, seed=len(name))
    if address == "top":
        address = _top(layout(CFG, weights, fmt, 0)[0].size)
    stored = driver.store_gemm_weights(weights, fmt, address=address)
    assert stored.address == address and stored.end <= DRAM_BYTES
    sent, read = driver.stats.bytes_out, len(driver.link.received)
    from_dram, dram_cycles = _cycles(driver, lambda: _multiply(driver, fmt, acts, stored))
    link_bytes = driver.stats.bytes_out - sent
    results = result_frames(driver.link.received[read:], CFG)
    if n <= CFG.rows:       # one RESULT frame a GEMM_DRAM (`protocol`)
        assert results == [(0, 0, n, m)] * len(stored.pieces)
    streamed, link_cycles = _cycles(driver, lambda: _multiply(driver, fmt, acts, weights))
    np.testing.assert_array_equal(from_dram, want)
    np.testing.assert_array_equal(streamed, want)
    again = _multiply(driver, fmt, acts, stored)                 # the weights stay put
    np.testing.assert_array_equal(again, want)
    with capsys.disabled():
        print(f"\n{name}: {n}x{k}x{m} in {len(stored.pieces)} GEMM_DRAMs ({stored.size} B "
              f"stored at 0x{address:x}): {dram_cycles} cycles from DRAM ({link_bytes} B on "
              f"the link), {link_cycles} streamed")


# name: (format, N (two terms a row: N/2 results), K, M)
PAIR_CASES = {
    "q4_1-decode": ("q4_1", 2, 576, 200),        # one whole frame a GEMM_DRAM
    "q8_0-prefill": ("q8_0", 6, 64, 40),         # three row tiles of one sum each
    "q4_0-row-blocks": ("q4_0", 10, 32, 17),
}


@pytest.mark.parametrize("name", list(PAIR_CASES))
def test_pair_sums_are_the_binary32_sums_of_the_rows(driver, name):
    """A GEMM_DRAM with `protocol.PAIR_SUM`: the device adds rows 2t and 2t+1 (`PairSum`),
    bit-exactly `fp32_model.f32_add` of the block model's two rows; half the rows come back,
    a decode step's still in one frame."""
    fmt, n, k, m = PAIR_CASES[name]
    (xq, xd), raw, want = _operands(fmt, n, k, m, seed=len(name) + 50)
    stored = driver.store_gemm_weights(raw, fmt, address=60 << 20)
    read = len(driver.link.received)
    got = driver.gemm_blocks(xq, xd, stored, pair_sum=True).view(np.uint32)
    np.testing.assert_array_equal(got, f32_add(want[0::2], want[1::2]))
    results = result_frames(driver.link.received[read:], CFG)
    if n <= CFG.rows:
        assert results == [(0, 0, n // 2, m)] * len(stored.pieces)
    else:
        assert {r[2] for r in results} == {CFG.rows // 2}
    # Without the flag the same GEMM sends both rows.
    np.testing.assert_array_equal(driver.gemm_blocks(xq, xd, stored).view(np.uint32), want)


# name: (format, pair sums, K, M)
ARGMAX_CASES = {
    "q8_0-lm-head": ("q8_0", True, 576, 1000),
    "q4_1-one-term": ("q4_1", False, 64, 37),
    "q4_0-ties": ("q4_0", True, 32, 50),
}


@pytest.mark.parametrize("name", list(ARGMAX_CASES))
def test_argmax_is_the_first_largest_result(driver, name):
    """A GEMM_DRAM with `protocol.ARGMAX` (`ArgMax`, after `PairSum`): the column and value
    of the largest of the one result row, the first of equal ones, in one small frame."""
    fmt, pair, k, m = ARGMAX_CASES[name]
    n = 2 if pair else 1
    (xq, xd), raw, want = _operands(fmt, n, k, m, seed=len(name) + 70)

    def result_row(want):
        return f32_add(want[0], want[1]) if pair else want[0]

    if name.endswith("ties"):       # the largest's weights again in another column: a tie
        top = int(np.argmax(f32_order_key(result_row(want))))
        raw[(top + m // 2) % m] = raw[top]
        want = block_gemm_reference(xq, xd, raw, fmt)
    row = result_row(want)
    keys = f32_order_key(row)
    column = int(np.argmax(keys))
    if name.endswith("ties"):
        assert np.count_nonzero(keys == keys.max()) == 2
    stored = driver.store_gemm_weights(raw, fmt, address=80 << 20)
    read = len(driver.link.received)
    got = driver.argmax_blocks(xq, xd, stored, pair_sum=pair)
    assert (got[0], int(np.float32(got[1]).view(np.uint32))) == (column, int(row[column]))
    assert result_frames(driver.link.received[read:], CFG) == [(0, 0, 1, 2)] * len(
        stored.pieces)


@pytest.mark.parametrize(("fmt", "where"), [("int8", "first"), ("int8", "crc"), ("q4_1", "last")])
def test_a_stored_payload_overwritten_fails_its_crc_until_stored_again(driver, fmt, where):
    acts, weights, want = _operands(fmt, 3, 64, 20, seed=7)
    stored = driver.store_gemm_weights(weights, fmt, address=200 << 20)
    assert driver.check_stored(stored) == []                      # DRAM_CHECK: all intact
    piece = stored.pieces[0]
    crc_word = piece.address + piece.length          # the CRC word follows the payload
    at = {"first": piece.address, "crc": crc_word, "last": crc_word - DRAM_WORD_BYTES}[where]
    driver.write_dram(at, bytes([0x5A]) + bytes(DRAM_WORD_BYTES - 1))
    with pytest.raises(StoredWeightsCorrupt, match="BAD_CRC") as info:
        _multiply(driver, fmt, acts, stored)
    assert info.value.piece == piece
    assert driver.check_stored(stored) == [piece]                 # found without a GEMM too
    assert driver.store_gemm_weights(weights, fmt, address=200 << 20) == stored
    assert driver.check_stored(stored) == []
    np.testing.assert_array_equal(_multiply(driver, fmt, acts, stored), want)


def test_a_long_write_spans_several_write_drams(driver):
    base = 300 << 20
    data = np.random.default_rng(3).integers(0, 256, 2 * MAX_WRITE_DRAM + 1000,
                                             np.uint8).tobytes()
    before = driver.stats.dram_bytes_out
    assert driver.write_dram(base, data) == len(data) + 8         # padded
    assert driver.stats.dram_bytes_out - before > len(data)
    # DRAM_CHECK over all of it (more words than a WRITE_DRAM's 2**16, and a read longer than
    # the 2**18 cycles the simulated board runs without a link word unless it has DRAM), once
    # its CRC word is stored after it, and again after one byte in the middle changed.
    padded = data + bytes(8)
    driver.write_dram(base + len(padded), crc_word(padded, CFG.link_bytes))
    assert driver.check_dram(base, len(padded))
    driver.write_dram(base + (1 << 19), bytes(16))
    assert not driver.check_dram(base, len(padded))
    driver.write_dram(base + (1 << 19), padded[1 << 19:(1 << 19) + 16])
    # Read back through a GEMM_DRAM: int8 weights of one column tile (their stored payload is
    # their rows as they are) from the 1 KiB across the two WRITE_DRAMs' seam; only their CRC
    # word is written.
    seam = base + MAX_WRITE_DRAM - 512
    rows = data[MAX_WRITE_DRAM - 512:MAX_WRITE_DRAM + 512]
    weights = np.frombuffer(rows, np.int8).reshape(64, 16)
    stored, image = layout(CFG, weights, "int8", seam)
    assert image[:len(rows)] == rows
    driver.write_dram(seam + len(rows), image[len(rows):])
    a = np.random.default_rng(4).integers(-128, 128, (3, 64), np.int8)
    np.testing.assert_array_equal(driver.gemm(a, stored), a.astype(np.int64) @ weights)


def _rejected_gemm_dram(address, length):
    def run(driver):
        stored = driver.store_gemm_weights(np.ones((32, 4), np.int8), address=400 << 20)
        piece = StoredGemm(0, 32, 0, 4, 4, address, length)
        driver.gemm(np.ones((2, 32), np.int8), dataclasses.replace(stored, pieces=(piece,)))
    return run


PAIR_Q4_1 = 4 | Format.Q4_1 << 24 | PAIR_SUM     # arg2: M = 4, Q4_1, pair sums


def _raw(op, frame):
    def run(driver):
        tag = driver.session.next_tag()
        driver._send(frame(tag))
        driver._expect(op, tag=tag)
    return run


@pytest.mark.parametrize(("run", "op", "status"), [
    (_rejected_gemm_dram(DRAM_BYTES - 16, 16), Op.GEMM_DRAM, Status.BAD_LENGTH),   # CRC word out
    (_rejected_gemm_dram(8, 64), Op.GEMM_DRAM, Status.BAD_LENGTH),                # misaligned
    (_rejected_gemm_dram(0, 40), Op.GEMM_DRAM, Status.BAD_LENGTH),                # length
    (_raw(Op.WRITE_DRAM, lambda tag: write_dram_command(DRAM_BYTES - 16, bytes(32), CFG,
                                                        tag=tag)), Op.WRITE_DRAM,
     Status.BAD_LENGTH),
    (_raw(Op.WRITE_DRAM, lambda tag: write_dram_command(8, bytes(16), CFG, tag=tag)),
     Op.WRITE_DRAM, Status.BAD_LENGTH),
    (_raw(Op.WRITE_DRAM, lambda tag: pack_header(Op.WRITE_DRAM, 0, 1, tag=tag, length=16)
          + bytes(32)), Op.WRITE_DRAM, Status.BAD_CHECK),
    (_raw(Op.DRAM_CHECK, lambda tag: dram_check_command(DRAM_BYTES - 16, 16, tag=tag)),
     Op.DRAM_CHECK, Status.BAD_LENGTH),                                    # CRC word out
    (_raw(Op.DRAM_CHECK, lambda tag: dram_check_command(0, 24, tag=tag)), Op.DRAM_CHECK,
     Status.BAD_LENGTH),                                                   # misaligned
    (_raw(Op.DRAM_CHECK, lambda tag: pack_header(Op.DRAM_CHECK, 0, 16, 1, tag=tag)),
     Op.DRAM_CHECK, Status.BAD_CHECK),
    # Pair sums: N odd, or on a GEMM (weights on the link)
    (_raw(Op.GEMM_DRAM, lambda tag: pack_header(Op.GEMM_DRAM, 3, 32, PAIR_Q4_1, tag=tag,
                                                info=16, arg3=0)), Op.GEMM_DRAM,
     Status.BAD_LENGTH),
    (_raw(Op.GEMM, lambda tag: pack_header(Op.GEMM, 2, 32, PAIR_Q4_1, tag=tag)), Op.GEMM,
     Status.BAD_LENGTH),
])
def test_the_device_refuses_dram_commands_out_of_range(driver, run, op, status):
    with pytest.raises(DeviceError) as info:
        run(driver)
    assert (info.value.op, info.value.status) == (op, status)
    a, w = np.ones((2, 3), np.int8), np.ones((3, 4), np.int8)
    np.testing.assert_array_equal(driver.gemm(a, w), np.full((2, 4), 3))    # still usable


def test_the_wrapper_refuses_a_dram_of_another_size():
    core = verilog.dram_core_for(CFG)
    Fragment.get(AcceleratorWithDram(CFG, core.info), None)
    with pytest.raises(ValueError, match=r"core has 512 MiB .* dram_mib = 256"):
        AcceleratorWithDram(Config(dram_mib=256), core.info)
    with pytest.raises(ValueError, match="needs a configuration with DRAM"):
        AcceleratorWithDram(Config(), core.info)


def test_the_build_key_names_the_dram_core(monkeypatch):
    key = verilog.source_key(CFG)
    assert verilog.extra_sources(CFG) == [verilog.dram_core_for(CFG).verilog]
    assert verilog.extra_sources(Config()) == []
    real = verilog.dram_core_for

    def other_core(config):
        core = real(config)
        return core and type("Core", (), {"key": core.key + "-other", "info": core.info})()

    monkeypatch.setattr(verilog, "dram_core_for", other_core)
    assert verilog.source_key(CFG) != key


def test_cli_gemm_with_dram_multiplies_from_the_dram_too(capsys):
    assert cli.main(["gemm", "--dram", "-n", "3", "-k", "64", "-m", "20"]) == 0
    out = capsys.readouterr().out
    assert "DRAM 512 MiB" in out
    assert "64x20 (weights from DRAM): bit-exact with numpy" in out


def test_cli_refuses_dram_on_a_narrow_link():
    with pytest.raises(SystemExit, match="dram_mib needs link_bytes = 16"):
        cli.main(["identify", "--dram", "--link-bytes", "4"])


def test_the_built_board_opens_without_generating_verilog(monkeypatch, driver):
    exe = board.board_executable(CFG)

    def refuse(_config):
        raise AssertionError("the Verilog was generated for a cached build")

    monkeypatch.setattr(verilog, "generate", refuse)
    assert board.board_executable(CFG) == exe
