"""``systolica program``: the openFPGALoader command for every catalog board, whether a build
comes first, and failures explained in one line (no board, no cable, missing libraries)."""

import json
import subprocess
import types

import pytest

from systolica import cli
from systolica.boards import build, program
from systolica.boards.catalog import BOARDS

LOADER_NAMES = {"icebreaker": "icebreaker", "ulx3s-85f": "ulx3s", "ulx3s-85f-gguf": "ulx3s",
                "ulx3s-25f": "ulx3s", "ecpix5-85f": "ecpix5", "ecpix5-85f-dram": "ecpix5",
                "tang-nano-9k": "tangnano9k"}


@pytest.fixture
def build_root(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "BUILD_ROOT", tmp_path / "boards")
    monkeypatch.setattr(build, "REPO", tmp_path)
    return tmp_path


def fake_build(root, board, *, key=None, ok=True):
    out = root / "boards" / board.name
    out.mkdir(parents=True, exist_ok=True)
    bitstream = out / f"systolica.{board.bitstream_extension}"
    bitstream.write_bytes(b"\x00" * 16)
    (out / "result.json").write_text(json.dumps({
        "ok": ok, "bitstream": str(bitstream.relative_to(root)),
        "source_key": key or program.bitstream_key(board)}))
    return bitstream


def test_catalog_names_every_board_for_openfpgaloader():
    assert {name: b.loader for name, b in BOARDS.items()} == LOADER_NAMES


@pytest.mark.parametrize("name", list(BOARDS))
@pytest.mark.parametrize("flash", [False, True])
def test_dry_run_prints_the_command_and_builds_nothing(name, flash, build_root, capsys):
    args = ["program", "--board", name, "--dry-run"] + (["--flash"] if flash else [])
    assert cli.main(args) == 0
    out = capsys.readouterr().out.splitlines()
    board = BOARDS[name]
    assert out[0] == (f"would build the bitstream first (no bitstream built yet): systolica "
                      f"bitstream --board {name}")
    argv = out[1].split()
    assert argv[0].endswith("openFPGALoader")
    assert argv[1:] == ["--board", LOADER_NAMES[name],
                        "--write-flash" if flash else "--write-sram",
                        f"build/boards/{name}/systolica.{board.bitstream_extension}"]
    assert not (build_root / "boards").exists()


def test_an_up_to_date_bitstream_is_used_a_stale_one_rebuilt(build_root, capsys):
    board = BOARDS["ulx3s-85f"]
    bitstream = fake_build(build_root, board)
    cmd = program.program(board, dry_run=True, log=print)
    assert cmd[-1] == str(bitstream) and "would build" not in capsys.readouterr().out
    fake_build(build_root, board, key="0" * 16)
    program.program(board, dry_run=True, log=print)
    assert "(the bitstream was built from other sources)" in capsys.readouterr().out
    fake_build(build_root, board, ok=False)
    assert program.built_bitstream(board) == (None, "the last build failed")


@pytest.mark.parametrize(("output", "message"), [
    ("openFPGALoader: error while loading shared libraries: libftdi1.so.2: cannot open shared "
     "object file", "the system library libftdi1.so.2 is missing"),
    ("unable to open ftdi device: -3 (device not found)", "check the USB cable"),
    ("Error: Permission denied", "permission denied opening the USB device"),
    ("something else\nfinal line", "openFPGALoader failed: final line"),
])
def test_loader_failures_are_one_line_reasons(output, message, build_root, monkeypatch):
    board = BOARDS["icebreaker"]
    fake_build(build_root, board)
    monkeypatch.setattr(program, "loader_executable", lambda: "/opt/openFPGALoader")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: types.SimpleNamespace(
        returncode=1, stdout="", stderr=output))
    with pytest.raises(program.ProgramError, match=message) as info:
        program.program(board, log=lambda *_: None)
    assert "\n" not in str(info.value)


def test_a_missing_bitstream_is_built_first(build_root, monkeypatch):
    board = BOARDS["tang-nano-9k"]
    calls = []
    monkeypatch.setattr(program, "loader_executable", lambda: "/opt/openFPGALoader")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: calls.append(cmd) or
                        types.SimpleNamespace(returncode=0, stdout="", stderr=""))

    def built(b):
        fake_build(build_root, b)
        return {"ok": True}

    program.program(board, flash=True, log=lambda *_: None, build=built)
    assert calls == [["/opt/openFPGALoader", "--board", "tangnano9k", "--write-flash",
                      str(build_root / "boards/tang-nano-9k/systolica.fs")]]
