"""`systolica quality` on two short windows: the table's figures are sane and ordered as the
formats' precision says, and the report files are written; bad arguments are refused."""

import json
import math

import pytest

from systolica import cli
from systolica.host.model_file import ModelFile
from systolica.host.quality import text_windows
from systolica.host.tokenizer import gguf_tokenizer


def test_text_windows_are_fixed_slices_of_the_reference_documentation():
    tokenizer = gguf_tokenizer(ModelFile())
    windows = text_windows(tokenizer, 3, 20)
    assert [len(w) for w in windows] == [20, 20, 20]
    assert windows == text_windows(tokenizer, 3, 20)
    assert len({tuple(w) for w in windows}) == 3
    with pytest.raises(ValueError, match="need at least 1 window"):
        text_windows(tokenizer, 0, 20)
    with pytest.raises(ValueError, match="the text has"):
        text_windows(tokenizer, 10, 10 ** 6)


def test_quality_on_two_short_windows(tmp_path, capsys):
    assert cli.main(["quality", "--windows", "2", "--tokens", "16", "--weights",
                     "file,q8_0,q4_0", "--report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 windows x 16 tokens of Python's reference documentation" in out
    rows = {r["row"]: r for r in json.loads((tmp_path / "quality.json").read_text())}
    assert set(rows) == {"file, float", "file, A8 blocks", "file, 2xA8 blocks", "q8_0, float",
                         "q8_0, A8 blocks", "q4_0, float", "q4_0, A8 blocks"}
    for r in rows.values():
        assert all(math.isfinite(r[k]) for k in ("perplexity", "kl", "top1", "bytes_per_weight"))
        assert r["perplexity"] > 1 and r["kl"] >= 0 and 0 <= r["top1"] <= 1
    base = rows["file, float"]
    assert base["kl"] == 0 and base["top1"] == 1 and base["changes"] == "nothing (baseline)"
    assert rows["q8_0, A8 blocks"]["changes"] == "weights + activations"
    assert rows["file, A8 blocks"]["changes"] == "activations"
    # More bits per weight, closer to the file's model; two activation terms closer than one.
    assert rows["q8_0, A8 blocks"]["kl"] <= rows["q4_0, A8 blocks"]["kl"]
    assert rows["q8_0, float"]["kl"] <= rows["q4_0, float"]["kl"]
    assert rows["file, 2xA8 blocks"]["kl"] <= rows["file, A8 blocks"]["kl"]
    # Frames at a 1-byte link: the blocks' own bytes per weight plus headers.
    assert 34 / 32 <= rows["q8_0, A8 blocks"]["bytes_per_weight"] < 34 / 32 * 1.001
    assert 18 / 32 <= rows["q4_0, A8 blocks"]["bytes_per_weight"] < 18 / 32 * 1.001
    assert rows["q4_0, A8 blocks"]["tokens_per_s"]["ecpix5-85f"] > rows["q8_0, A8 blocks"][
        "tokens_per_s"]["ecpix5-85f"]
    assert "icebreaker" not in rows["q4_0, A8 blocks"]["tokens_per_s"]   # int8-only board
    assert (tmp_path / "quality.png").stat().st_size > 10_000
    assert "What each bit buys" in (tmp_path / "quality.md").read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--windows", "0"], "--windows must be at least 1, not 0"),
    (["--tokens", "1"], "--tokens must be at least 2, not 1"),
    (["--weights", "q2_k"], "--weights takes file, q8_0, q4_1, q4_0, int8, not 'q2_k'"),
    (["--windows", "100", "--tokens", "100000"], "the text has"),
])
def test_quality_bad_arguments(args, message, capsys):
    assert cli.main(["quality", *args]) == 2
    assert message in capsys.readouterr().err


def test_resident_bytes_and_derived_projection():
    """A row's DRAM bytes are its stored payloads as `place` lays out the file's; its device
    cycles scale from the measured run's by those bytes; its link bytes are the run's."""
    from systolica.boards.catalog import BOARDS
    from systolica.host.dram_rate import DramRate
    from systolica.host.projection import DRAM_BOARD, FAST_LINK
    from systolica.host.quality import resident_bytes, resident_projection, weights_per_token
    from systolica.host.requantized import Requantized
    from systolica.host.resident_weights import place

    model_file = ModelFile()
    config = BOARDS[DRAM_BOARD].config
    file_bytes = resident_bytes(config, model_file)
    assert file_bytes == place(config, model_file).size
    q4_0 = resident_bytes(config, model_file, source=Requantized(model_file, "q4_0"))
    int8 = resident_bytes(config, model_file, int8=True)
    weights = weights_per_token(model_file)
    assert 18 / 32 * weights <= q4_0 < 18 / 32 * weights * 1.001
    assert weights <= int8 < weights * 1.001
    rate = DramRate(burst_cycles=1, refresh_cycles=0, refresh_interval=1, clock_hz=75e6,
                    source="test")
    figures = {"what": "per decode token", "cycles": 13e6, "dram_bytes": file_bytes,
               "link_bytes": 0.9e6}
    same = resident_projection(figures, rate, file_bytes)
    assert same.cycles == 13e6 and same.link_bytes == 0.9e6 and same.bound() == "link"
    smaller = resident_projection(figures, rate, q4_0)
    assert smaller.cycles == pytest.approx(13e6 * q4_0 / file_bytes)
    assert smaller.tokens_per_s(FAST_LINK[0]) > same.tokens_per_s(FAST_LINK[0])
    assert smaller.tokens_per_s() == same.tokens_per_s()        # both bound by the UART


def test_measure_resident_reports_a_failed_generate(monkeypatch, capsys):
    """--measure-resident with no saved run runs the DRAM generate; when that fails, no
    figures are used and the reason is given (here the generate stands in as failing)."""
    from systolica import quality_cmd

    calls = []
    monkeypatch.setattr("systolica.host.projection.load_run", lambda config: None)
    monkeypatch.setattr(cli, "main", lambda argv: calls.append(argv) or 1)
    assert quality_cmd._resident_run(True) == (
        None, "the generate that measures it failed (exit status 1)")
    assert calls == [["generate", quality_cmd.RESIDENT_PROMPT, *quality_cmd.RESIDENT_ARGS]]
    resident, why = quality_cmd._resident_run(False)
    assert resident is None and "not measured on the current simulated board build" in why
    assert len(calls) == 1
