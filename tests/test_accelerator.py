"""The whole accelerator (link adapter, decoder, engine, framer) in cocotb against numpy.

Each row builds (or reuses, by content hash) one configuration and runs one cocotb case on it.
cocotb drives the DUT at tens of thousands of cycles per second, so shapes are small and sampled;
big shapes belong to the simulated board.
"""

import json
import pathlib
import zlib

import pytest
from cocotb_tools.check_results import get_results

from systolica.config import Config
from systolica.sim import cocotb_build

TESTS = pathlib.Path(__file__).resolve().parent

# A short idle abort (5000 cycles: 50 us at cocotb's 100 MHz) for the cut-off frames' tests.
SMALL = dict(act_depth=512, max_k=160, rx_fifo_words=32, abort_cycles=5000)

INT8 = dict(formats=("int8",))   # int8-only builds compile in a fraction of the time

# 1x1, 4x4, 2x4, 7x5 and 8x4 carry every format; 8x8 int8 only (the 8x8 block path runs in
# the simulated board: tests/test_model.py, `systolica bench`). 7x5 shares one scale unit among
# its 5 columns, with multipliers in logic: 35 dot products a block, more than a block's 32
# cycles, so its block GEMMs run one block per `Config.block_period` (39) cycles. 8x4 shares one
# among 4 columns (rows × share = 32: the shared unit has no idle cycle when blocks come back to
# back), and its buffers are in registered pieces, its lane memory in 8-weight words and its
# read-out row select in a copy a column as on the ECPIX-5; 7x5 has 16-weight lane words, the
# others the default 32 (a block a cycle).
CONFIGS = {
    # The 1-byte link with the ULX3S-85F int8 build's framer: result rows held in a `RowHold`
    # and sent a byte at a time from there, headers loaded by the framer's state alone (the
    # other 1-byte-link boards' framer runs in tests/test_framer.py and behind their pty).
    "1x1": Config(rows=1, cols=1, link_bytes=1, row_hold=True, framer_state_loads=True,
                  **SMALL | {"rx_fifo_words": 64}),
    "4x4": Config(rows=4, cols=4, link_bytes=4, scale_share=1, **SMALL),
    "8x8": Config(rows=8, cols=8, link_bytes=8, **SMALL, **INT8),
    # LOAD_A's vectors packed: 2-byte vectors, 4 to a link word (`protocol.act_lanes`).
    "2x4-packed": Config(rows=2, cols=4, link_bytes=8, scale_share=2, **SMALL),
    "7x5-wide": Config(rows=7, cols=5, link_bytes=16, scale_share=5, scale_multiplier="lut",
                       lane_weights=16, **SMALL),
    "8x4-shared": Config(rows=8, cols=4, link_bytes=4, scale_share=4, scale_multiplier="mixed",
                         buffer_piece_depth=128, lane_weights=8, readout_copies=4, **SMALL),
}

# (config, gemms as (N, K, M, A kind, W kind), idle, backpressure)
CASES = {
    "1x1-random": ("1x1", [(3, 7, 2, "random", "random"), (1, 1, 1, "random", "random")],
                   0.0, 0.0),
    "4x4-odd-shapes": ("4x4", [(7, 9, 7, "random", "random"), (9, 1, 9, "random", "random"),
                               (1, 64, 9, "random", "random")], 0.0, 0.0),
    "4x4-stress": ("4x4", [(9, 7, 9, "random", "random"), (7, 9, 1, "random", "random")],
                   0.5, 0.5),
    "8x8-random": ("8x8", [(9, 64, 9, "random", "random"), (1, 129, 7, "random", "random")],
                   0.0, 0.0),
    "8x8-extremes": ("8x8", [(9, 129, 9, "min", "min"), (8, 129, 8, "max", "min"),
                             (7, 9, 7, "zeros", "random")], 0.0, 0.0),
    "8x8-stress": ("8x8", [(9, 9, 17, "random", "random")], 0.3, 0.7),
    "2x4-packed-random": ("2x4-packed", [(7, 9, 9, "random", "random"),
                                         (1, 7, 64, "random", "random")], 0.0, 0.0),
    "2x4-packed-stress": ("2x4-packed", [(9, 7, 9, "random", "random")], 0.7, 0.3),
    "7x5-wide-link": ("7x5-wide", [(7, 9, 7, "random", "random"), (1, 1, 1, "min", "min")],
                      0.2, 0.2),
    "1x1-stress": ("1x1", [(3, 9, 4, "random", "random"), (1, 33, 2, "max", "min")], 0.3, 0.5),
    "8x4-pieces": ("8x4-shared", [(17, 160, 9, "random", "random"), (9, 1, 5, "max", "min")],
                   0.2, 0.3),
}


# Block formats: (config, GEMMs as (N, K, M, format, activation kind), idle, backpressure)
BLOCK_CASES = {
    "1x1-blocks": ("1x1", [(2, 64, 3, "q4_1", "random"), (1, 32, 1, "q8_0", "max")], 0.0, 0.0),
    "4x4-blocks": ("4x4", [(5, 96, 6, "q4_0", "random"), (8, 40, 5, "int8", "random"),
                           (4, 64, 4, "q4_1", "random"), (7, 9, 3, "int8", "random"),
                           (3, 32, 5, "q8_0", "random")], 0.0, 0.0),
    "4x4-blocks-stress": ("4x4", [(6, 64, 5, "q4_1", "random"), (5, 32, 7, "q8_0", "min")],
                          0.5, 0.5),
    "4x4-blocks-long": ("4x4", [(9, 160, 9, "q4_1", "random"), (8, 32, 16, "q8_0", "random"),
                                (1, 96, 8, "q4_0", "max")], 0.0, 0.0),
    "2x4-packed-blocks": ("2x4-packed", [(3, 64, 5, "q4_1", "random"),
                                         (2, 40, 6, "int8", "random"),
                                         (1, 32, 4, "q8_0", "max")], 0.3, 0.4),
    "7x5-wide-blocks": ("7x5-wide", [(4, 64, 6, "q4_1", "random"), (3, 32, 5, "q8_0", "random")],
                        0.2, 0.2),
    "8x4-shared-blocks": ("8x4-shared", [(24, 160, 5, "q4_1", "random"),
                                         (9, 64, 4, "q4_0", "random"),
                                         (16, 96, 3, "q8_0", "max")], 0.0, 0.0),
    "8x4-shared-blocks-stress": ("8x4-shared", [(16, 33, 6, "int8", "random"),
                                                (17, 96, 9, "q4_1", "random")], 0.4, 0.6),
}


def run_cocotb(config, testcase, case, tmp_path):
    build = cocotb_build.build(config)
    xml = build.run("cocotb_accelerator", TESTS, case, testcase=testcase)
    total, failed = get_results(xml)
    assert total >= 1 and failed == 0, f"cocotb {testcase}: {failed} of {total} failed; see {xml}"


@pytest.mark.parametrize("name", list(CASES))
def test_gemm_matches_numpy(name, tmp_path):
    config, gemms, idle, backpressure = CASES[name]
    report = tmp_path / "report.json"
    case = dict(gemms=gemms, idle=idle, backpressure=backpressure,
                seed=zlib.crc32(name.encode()) & 0xFFFF, report=str(report))
    run_cocotb(CONFIGS[config], "gemms", case, tmp_path)
    figures = json.loads(report.read_text())
    assert len(figures["gemms"]) == len(gemms)


@pytest.mark.parametrize("name", list(BLOCK_CASES))
def test_block_gemm_matches_bit_exact_model(name, tmp_path):
    config, gemms, idle, backpressure = BLOCK_CASES[name]
    report = tmp_path / "report.json"
    case = dict(block_gemms=gemms, idle=idle, backpressure=backpressure,
                seed=zlib.crc32(name.encode()) & 0xFFFF, report=str(report))
    run_cocotb(CONFIGS[config], "block_products", case, tmp_path)
    assert len(json.loads(report.read_text())["gemms"]) == len(gemms)


@pytest.mark.parametrize("config", ["1x1", "4x4"])
def test_block_errors_leave_device_usable(config, tmp_path):
    run_cocotb(CONFIGS[config], "block_errors", dict(seed=4), tmp_path)


@pytest.mark.parametrize("config", ["1x1", "4x4", "7x5-wide", "2x4-packed"])
def test_protocol_errors_leave_device_usable(config, tmp_path):
    run_cocotb(CONFIGS[config], "protocol_errors", dict(seed=3), tmp_path)


def test_utilization_64x576x64_on_8x8(tmp_path, capsys):
    """MAC utilization with weights at full rate: N·K·M ÷ (R·C × reply cycles). Cycle counts are
    deterministic, so the 80 % target is checked, and the figure is printed."""
    config = Config(**INT8)   # the simulated board's array and link: 2×16, 16 bytes
    report = tmp_path / "report.json"
    case = dict(gemms=[(64, 576, 64, "random", "random")], seed=5, report=str(report))
    run_cocotb(config, "gemms", case, tmp_path)
    (gemm,) = json.loads(report.read_text())["gemms"]
    with capsys.disabled():
        print(f"\n64x576x64 GEMM on 8x8: {gemm['cycles']} device cycles, "
              f"MAC utilization {gemm['utilization']:.1%}")
    assert gemm["utilization"] >= 0.80
