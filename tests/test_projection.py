"""The per-board decode projection: which GEMMs a decode step runs, and how cycles, clock and
link combine into tokens/s."""

import pytest

from systolica.boards.report import SMOLLM2_WEIGHTS_PER_TOKEN
from systolica.host.projection import BoardProjection, decode_gemms


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
