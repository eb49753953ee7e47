"""A sample of the single-bit flips of one small GEMM exchange (every 97th bit, both ways) on the
simulated board: none may end in a wrong result, and the ones that do harm end exact after a
retry. `make flips` runs every bit."""

from systolica.host.flip_sweep import sweep


def test_sampled_bit_flips_end_exact_or_in_a_clear_error():
    result = sweep(step=97)
    print("\n" + result.table())
    assert result.wrong() == 0
    flips = sum(result.outcomes.values())
    assert flips >= 2 * 8 * 100 // 97        # both directions, over at least 100 bytes each way
    exact = sum(n for (_, outcome), n in result.outcomes.items()
                if outcome.startswith("exact"))
    assert exact == flips, result.errors     # at this rate every flip is recovered
    assert result.retries > 0
