"""The per-board decode projection: which GEMMs a decode step runs, and how cycles, clock and
link combine into tokens/s."""

import pytest

from systolica.boards.catalog import BOARDS
from systolica.boards.report import SMOLLM2_WEIGHTS_PER_TOKEN
from systolica.host.dram_rate import DramRate
from systolica.host.projection import (
    FAST_LINK,
    BoardProjection,
    decode_gemms,
    project_resident,
    resident_projection_lines,
    sim_config,
)


def test_decode_step_gemms_are_every_linear_and_the_lm_head(model_file):
    shapes = decode_gemms(model_file)
    assert shapes == {
        (576, 576, "q4_1"): 60,        # attn_q, attn_output
        (576, 192, "q4_1"): 60,        # attn_k, attn_v
        (576, 1536, "q4_1"): 60,       # ffn_gate, ffn_up
        (1536, 576, "q4_1"): 30,       # ffn_down
        (576, 49152, "q8_0"): 1,       # the tied LM head, token_embd
    }
    assert sum(k * m * n for (k, m, _), n in shapes.items()) == SMOLLM2_WEIGHTS_PER_TOKEN


@pytest.mark.parametrize(("cycles", "link_bytes", "bound", "tokens_per_s"), [
    (10_000_000, 100_000_000, "link", 300_000 / 100_000_000),    # UART: 333 s vs 0.1 s
    (1_000_000_000, 1_000, "array", 0.1),                          # 10 s of array, 3 ms of link
])
def test_projection_takes_the_larger_bound(cycles, link_bytes, bound, tokens_per_s):
    p = BoardProjection(board="b", clock_hz=100e6, link_bytes_per_s=300_000, formats="q4_1",
                        cycles=cycles, link_bytes=link_bytes, source="test")
    assert p.bound == bound
    assert p.tokens_per_s == pytest.approx(tokens_per_s)


@pytest.mark.parametrize(("cycles", "dram_bytes", "link_bytes", "bound", "fast_bound"), [
    (15e6, 96e6, 5e6, "link", "device cycles"),     # 0.2 s, 0.16 s, 16.7 s; 0.125 s
    (1e6, 96e6, 1e6, "link", "DRAM"),               # 13 ms, 0.16 s, 3.3 s; 25 ms
    (1e6, 96e6, 1e3, "DRAM", "DRAM"),
])
def test_resident_projection_takes_the_largest_bound(cycles, dram_bytes, link_bytes, bound,
                                                     fast_bound):
    rate = DramRate(burst_cycles=2, refresh_cycles=104, refresh_interval=586, clock_hz=75e6,
                    source="test")
    p = project_resident(cycles, dram_bytes, link_bytes, rate, board="ecpix5-85f",
                         source="test")
    assert p.link_bytes_per_s == 300_000 and p.dram_bytes_per_s == 600e6
    bounds = p.bounds()
    assert p.bound() == bound and p.tokens_per_s() == pytest.approx(1 / bounds[bound])
    assert p.bound(FAST_LINK[0]) == fast_bound
    lines = "\n".join(resident_projection_lines(p))
    assert f"bound by the {bound}" in lines and f"bound by the {fast_bound}" in lines


@pytest.mark.parametrize("name", list(BOARDS))
def test_every_board_has_a_simulated_configuration_to_measure_at(name):
    """Each catalog board's GEMMs are measured on its array behind a 16-byte link: that
    configuration exists (the ULX3S-85F's row_hold, for byte-wide links only, is dropped) and
    differs from the board's only in the link and what depends on it."""
    board = BOARDS[name]
    cfg, cache = sim_config(board)
    assert cfg.link_bytes == 16 and cfg.rx_bytes >= 1024 and name in cache.name
    same = ("rows", "cols", "act_depth", "max_k", "formats", "scale_share", "lane_weights",
            "multiplier", "dram_mib")
    assert all(getattr(cfg, f) == getattr(board.config, f) for f in same)
