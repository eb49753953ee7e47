"""The sampler: greedy by default, temperature / top-k / top-p, reproducible with a seed, and
argument errors that name the argument."""

import numpy as np
import pytest

from systolica.host.sampling import Sampler

LOGITS = np.random.default_rng(5).standard_normal(1000).astype(np.float32) * 3


def draws(sampler, n=40, logits=LOGITS):
    return [sampler(logits) for _ in range(n)]


def test_default_is_greedy():
    assert Sampler().greedy
    assert draws(Sampler(), 3) == [int(np.argmax(LOGITS))] * 3


@pytest.mark.parametrize("kwargs", [
    {"temperature": 0.0, "top_p": 0.5, "seed": 1},
    {"temperature": 1.5, "top_k": 1, "seed": 2},
    {"temperature": 0.7, "top_k": 1, "top_p": 0.3},
], ids=["temperature-0", "top-k-1", "top-k-1-top-p"])
def test_greedy_settings_give_the_arg_max(kwargs):
    sampler = Sampler(**kwargs)
    assert sampler.greedy
    assert set(draws(sampler, 10)) == {int(np.argmax(LOGITS))}


def test_same_seed_same_tokens_different_seeds_differ():
    settings = {"temperature": 1.0, "top_k": 50, "top_p": 0.95}
    a = draws(Sampler(**settings, seed=7))
    b = draws(Sampler(**settings, seed=7))
    c = draws(Sampler(**settings, seed=8))
    assert a == b
    assert a != c
    assert len(set(a)) > 1          # it does sample


def test_top_k_keeps_only_the_k_largest():
    top5 = set(np.argsort(-LOGITS)[:5].tolist())
    assert set(draws(Sampler(temperature=5.0, top_k=5, seed=0), 200)) <= top5
    p = Sampler(temperature=1.0, top_k=5).probabilities(LOGITS)
    assert set(np.flatnonzero(p).tolist()) == top5
    assert p.sum() == pytest.approx(1.0)


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    cases = [(0.5, {0}), (0.6, {0, 1}), (0.79, {0, 1}), (0.81, {0, 1, 2}), (1.0, {0, 1, 2, 3})]
    for top_p, kept in cases:
        p = Sampler(temperature=1.0, top_p=top_p).probabilities(logits)
        assert set(np.flatnonzero(p).tolist()) == kept, top_p
        assert p.sum() == pytest.approx(1.0)
    p = Sampler(temperature=1.0, top_p=0.79).probabilities(logits)
    np.testing.assert_allclose(p[:2], [0.5 / 0.8, 0.3 / 0.8])


def test_temperature_sharpens_and_flattens():
    logits = np.array([2.0, 1.0, 0.0])
    cold = Sampler(temperature=0.25).probabilities(logits)
    warm = Sampler(temperature=4.0).probabilities(logits)
    assert cold[0] > 0.98
    assert warm.max() < 0.45


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"temperature": -0.1}, "temperature must be a finite number >= 0"),
    ({"temperature": float("nan")}, "temperature must be"),
    ({"temperature": "hot"}, "temperature must be"),
    ({"top_k": -1}, "top_k must be an integer >= 0"),
    ({"top_k": 2.5}, "top_k must be an integer"),
    ({"top_k": True}, "top_k must be an integer"),
    ({"top_p": 0}, r"top_p must be a number in \(0, 1\]"),
    ({"top_p": 1.01}, "top_p must be"),
    ({"top_p": -0.5}, "top_p must be"),
    ({"seed": -3}, "seed must be an integer >= 0"),
    ({"seed": 1.5}, "seed must be"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Sampler(**kwargs)


def test_bad_logits_are_rejected():
    with pytest.raises(ValueError, match="logits"):
        Sampler(temperature=1.0).probabilities([1.0, np.inf])
    with pytest.raises(ValueError, match="logits"):
        Sampler()([])
