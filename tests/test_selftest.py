"""``systolica selftest`` over a serial link to the simulated board behind a pty, at a board's
configuration (1-byte link): a passing bring-up report, and a clear failure when the device is
not the board it should be."""

import re

from systolica import cli
from systolica.boards.catalog import BOARDS
from systolica.sim.pty_board import PtyBoard


def run(config, board, capsys):
    with PtyBoard(config) as pty:
        code = cli.main(["selftest", "--port", pty.port, "--board", board, "--timeout", "60"])
    return code, capsys.readouterr().out


def test_selftest_passes_on_the_board_it_claims_to_be(capsys):
    code, out = run(BOARDS["icebreaker"].config, "icebreaker", capsys)
    assert code == 0, out
    assert "PASS  identify   4x4 array, link 1 B, formats int8: the icebreaker configuration" in out
    assert "PASS  GEMM int8  9x96x9: exact" in out
    rates = re.search(r"link: ([\d,.]+) kB/s to the device, ([\d,.]+) kB/s back \(the UART's "
                      r"300.0 kB/s at 3000000 baud, 8N1: \d+% and \d+%\)", out)
    assert rates and all(float(r.replace(",", "")) > 0 for r in rates.groups())
    assert re.search(r"SmolLM2 decode at this link rate: [\d.]+ tokens/s \(134.5 MB of int8 "
                     r"weights a token\)", out)
    assert "LED led_g 0: heartbeat" in out and "LED led_r 0: receive activity" in out
    assert out.rstrip().endswith("selftest: all checks passed")


def test_selftest_fails_clearly_on_a_device_that_is_another_board(capsys):
    code, out = run(BOARDS["tang-nano-9k"].config, "icebreaker", capsys)
    assert code == 1
    assert "FAIL  identify   the device is not a icebreaker build: rows 6 (expected 4)" in out
    assert "systolica program --board icebreaker" in out
    assert "PASS  GEMM int8" in out          # it still computes right: only its identity is off
    assert out.rstrip().endswith("selftest: FAILED (identify)")
