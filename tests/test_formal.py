"""Formal checks of the RTL with SymbiYosys (Yosys, sby and Yices, all from PyPI), at the short
depths of `systolica.sim.formal_checks`; ``python -m systolica.sim.formal`` runs them all at
their long depths. And the harness's own checks: a property that does not hold, or a cover that
is not reached, is reported as a failure with its trace."""

import pytest

from systolica.sim import formal
from systolica.sim.formal_array import ArraySums
from systolica.sim.formal_checks import CHECKS, by_name

SHORT = [c for c in CHECKS if c.short_depth]


@pytest.mark.parametrize("check", SHORT, ids=[c.name for c in SHORT])
def test_formal_check(check):
    result = formal.check(check.build(), name=check.name, mode=check.mode,
                          depth=check.short_depth)
    assert result.status == "PASS"


def test_a_wrong_property_fails_with_a_trace():
    """The array's results compared with the right sums plus one: sby must find the
    counterexample, and the failure must say where its trace and the assertion are."""
    spec = ArraySums(max_k=2, k=2, bubbles=False, earlier_tile=False, reference="operands",
                     off_by=1)
    with pytest.raises(formal.FormalFailure) as info:
        formal.check(spec, name="canary-array-off-by-one", mode="bmc", depth=7)
    result = info.value.result
    assert result.status == "FAIL"
    assert [p.name for p in result.traces] == ["trace.vcd"]
    assert result.traces[0].stat().st_size > 0
    message = str(info.value)
    assert str(result.traces[0]) in message
    assert "formal_array.py" in message and "row[c] == expected" in message


def test_an_unreached_cover_fails():
    """A K = 3 tile's results cannot be read within 5 cycles (3 steps, then the latency)."""
    check = by_name("array-2x2-k3-cover")
    result = formal.run(check.build(), name="canary-array-cover-too-short", mode="cover",
                        depth=5)
    assert result.status == "FAIL"
    assert any("Unreached cover" in line for line in result.findings)


def test_sby_file_and_arguments():
    text = formal.sby_text("prove", 7, timeout=60)
    for line in ("mode prove", "depth 7", "timeout 60", "smtbmc yices", "read_rtlil top.il"):
        assert line in text.splitlines()
    with pytest.raises(ValueError, match="mode"):
        formal.sby_text("sim", 7)
    with pytest.raises(ValueError, match="depth"):
        formal.sby_text("bmc", 0)
    with pytest.raises(ValueError, match="name"):
        formal.run(None, name="a b")


def test_command_line_lists_every_check(capsys):
    assert formal.main(["--list"]) == 0
    out = capsys.readouterr().out
    for check in CHECKS:
        assert check.name in out
    with pytest.raises(SystemExit):
        formal.main(["no-such-check"])
