"""Choosing the next token from logits: greedy (the default), or sampling with a temperature,
top-k and top-p (nucleus), reproducible with a seed."""

import math
import numbers

import numpy as np

__all__ = ["Sampler"]


def _check_temperature(value):
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not math.isfinite(value) or value < 0):
        raise ValueError(f"temperature must be a finite number >= 0, not {value!r}")
    return float(value)


def _check_top_k(value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0: no limit), not {value!r}")
    return int(value)


def _check_top_p(value):
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not math.isfinite(value) or not 0 < value <= 1):
        raise ValueError(f"top_p must be a number in (0, 1], not {value!r}")
    return float(value)


def _check_seed(value):
    if value is not None and (not isinstance(value, numbers.Integral) or isinstance(value, bool)
                              or value < 0):
        raise ValueError(f"seed must be an integer >= 0 (or none), not {value!r}")
    return value


class Sampler:
    """``sampler(logits) -> token id``.

    With ``temperature`` 0 (the default) the choice is greedy: the arg max (the first one on a
    tie), whatever ``top_k`` and ``top_p`` say. Otherwise the logits are divided by the
    temperature, cut to the ``top_k`` largest (0: no cut), then to the smallest set of tokens
    whose probabilities add up to at least ``top_p``, and a token is drawn from what is left,
    renormalized, with a `numpy.random.Generator` seeded by ``seed`` (the same seed, logits and
    settings give the same tokens).

    Parameters
    ----------
    temperature : float
        At least 0.
    top_k : int
        At least 0; 1 is greedy.
    top_p : float
        In (0, 1]; 1 keeps every token.
    seed : int, optional
        At least 0; None seeds from the operating system.
    """

    def __init__(self, temperature=0.0, top_k=0, top_p=1.0, seed=None):
        self.temperature = _check_temperature(temperature)
        self.top_k = _check_top_k(top_k)
        self.top_p = _check_top_p(top_p)
        self.seed = _check_seed(seed)
        self.rng = np.random.default_rng(self.seed)

    @property
    def greedy(self):
        """Whether every choice is the arg max."""
        return self.temperature == 0 or self.top_k == 1

    def probabilities(self, logits):
        """The distribution a token is drawn from (float64, zero outside the kept tokens)."""
        z = np.asarray(logits, dtype=np.float64).ravel()
        if z.size == 0 or not np.isfinite(z).all():
            raise ValueError("logits must be a non-empty array of finite numbers")
        if self.greedy:
            p = np.zeros_like(z)
            p[int(np.argmax(z))] = 1.0
            return p
        z = z / self.temperature
        if 0 < self.top_k < z.size:
            cut = np.partition(z, -self.top_k)[-self.top_k]
            z = np.where(z >= cut, z, -np.inf)          # ties at the cut are all kept
        p = np.exp(z - z.max())
        p /= p.sum()
        if self.top_p < 1:
            order = np.argsort(-p, kind="stable")
            cumulative = np.cumsum(p[order])
            keep = int(np.searchsorted(cumulative, self.top_p)) + 1   # reach top_p
            drop = order[keep:]
            p[drop] = 0.0
            p /= p.sum()
        return p

    def __call__(self, logits):
        if self.greedy:
            z = np.asarray(logits).ravel()
            if z.size == 0:
                raise ValueError("logits must be a non-empty array of finite numbers")
            return int(np.argmax(z))
        p = self.probabilities(logits)
        return int(self.rng.choice(p.size, p=p))

    def __repr__(self):
        if self.greedy:
            return "Sampler(greedy)"
        return (f"Sampler(temperature={self.temperature:g}, top_k={self.top_k}, "
                f"top_p={self.top_p:g}, seed={self.seed})")
