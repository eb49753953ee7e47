"""The faulty link: each kind of damage at the rate asked for, in both directions, repeatable
from its seed; bad rates are refused by name."""

import collections
import contextlib

import numpy as np
import pytest

from systolica.host.faulty_link import FaultRates, FaultyLink
from systolica.host.link import Link, LinkTimeout


class Loopback(Link):
    """Bytes written come back to be read (a stand-in device for testing the wrapper alone)."""

    name = "loopback"

    def __init__(self):
        self.buf = bytearray()

    def write(self, data):
        self.buf += data

    def read_some(self, timeout, want=1):
        if not self.buf:
            raise LinkTimeout("loopback: empty")
        out, self.buf = bytes(self.buf), bytearray()
        return out

    def close(self):
        pass


def through(rates, data, direction, seed=1):
    link = FaultyLink(Loopback(), **{direction: rates}, seed=seed)
    out = bytearray()
    for i in range(0, len(data), 4096):
        link.write(data[i:i + 4096])
        with contextlib.suppress(LinkTimeout):
            out += link.read_some(0)
    return bytes(out), link.faults[direction]


DATA = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
RATE = 0.01
SIGMAS = 6 * (len(DATA) * RATE) ** 0.5


@pytest.mark.parametrize("direction", ["to_device", "from_device"])
def test_flips_change_one_bit_of_that_many_bytes(direction):
    out, faults = through(FaultRates(flip=RATE), DATA, direction)
    assert len(out) == len(DATA)
    diff = np.frombuffer(out, np.uint8) ^ np.frombuffer(DATA, np.uint8)
    assert np.count_nonzero(diff) == faults["flip"]
    assert all(bin(int(d)).count("1") == 1 for d in diff[diff != 0])
    assert abs(faults["flip"] - len(DATA) * RATE) < SIGMAS


@pytest.mark.parametrize(("kind", "length_change"), [("drop", -1), ("duplicate", +1),
                                                     ("delay", 0)])
def test_drops_duplicates_and_delays(kind, length_change):
    out, faults = through(FaultRates(**{kind: RATE}), DATA, "from_device")
    assert abs(faults[kind] - len(DATA) * RATE) < SIGMAS
    if kind == "delay":      # the bytes held back at the very end are still held
        assert collections.Counter(out) <= collections.Counter(DATA) and out != DATA
        assert len(DATA) - len(out) <= faults["delay"]
    else:
        assert len(out) - len(DATA) == length_change * faults[kind]


def test_no_rates_pass_everything_and_a_seed_repeats():
    assert through(FaultRates(), DATA, "to_device")[0] == DATA
    rates = FaultRates(flip=RATE, drop=RATE, duplicate=RATE, delay=RATE)
    assert through(rates, DATA, "to_device", seed=7) == through(rates, DATA, "to_device", seed=7)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(flip=-0.1), "the flip rate must be a number in"),
    (dict(drop=1.0), "the drop rate must be a number in"),
    (dict(delay="x"), "the delay rate must be a number in"),
    (dict(flip=0.6, drop=0.6), "add up to more than 1"),
])
def test_bad_rates_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FaultRates(**kwargs)

