"""Build caches are keyed on what determines the Verilog, so a built simulated board opens
without generating the Verilog again (that took about 20 s a command)."""

import dataclasses

import pytest

from systolica.config import Config
from systolica.sim import board, verilog


def test_built_board_opens_without_generating_verilog(monkeypatch):
    config = Config()
    exe = board.board_executable(config)          # builds it once if needed

    def refuse(_config):
        raise AssertionError("the Verilog was generated for a cached build")

    monkeypatch.setattr(verilog, "generate", refuse)
    assert board.board_executable(config) == exe


@pytest.mark.parametrize("change", [dict(rows=3), dict(lane_weights=16), dict(scale_share=2)])
def test_key_changes_with_the_configuration(change):
    """Implementation-only fields (not compared by Config) still change the Verilog's key."""
    base = Config()
    assert verilog.source_key(dataclasses.replace(base, **change)) != verilog.source_key(base)
    assert verilog.source_key(Config()) == verilog.source_key(base)


def test_key_changes_with_any_gateware_source(monkeypatch, tmp_path):
    sources = verilog.source_files()
    assert {p.name for p in sources} >= {"engine.py", "top.py", "config.py", "verilog.py"}
    extra = tmp_path / "pe.py"
    extra.write_text("x = 1\n")
    monkeypatch.setattr(verilog, "source_files", lambda: [*sources, extra])
    before = verilog.source_key(Config())
    extra.write_text("x = 2\n")
    assert verilog.source_key(Config()) != before
