"""A `Link` that damages the bytes passing through it, for testing recovery from a noisy line.

Between the host and a device (the simulated board, or a real one), each byte in either
direction is, independently and at the given rates, flipped in one random bit, dropped,
duplicated or held back (delayed: it comes out after the bytes behind it). The faults are drawn
from a seeded generator, so a failing run can be repeated, and counted in ``faults``.
"""

import random

from .link import LinkWrapper

__all__ = ["BitFlipLink", "FaultRates", "FaultyLink"]

FAULTS = ("flip", "drop", "duplicate", "delay")


class FaultRates:
    """Per-byte probabilities of each fault (each in [0, 1); together at most 1)."""

    def __init__(self, flip=0.0, drop=0.0, duplicate=0.0, delay=0.0):
        self.rates = {"flip": flip, "drop": drop, "duplicate": duplicate, "delay": delay}
        for name, rate in self.rates.items():
            if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
                raise ValueError(f"the {name} rate must be a number in [0, 1), not {rate!r}")
        if sum(self.rates.values()) > 1:
            raise ValueError(f"the fault rates add up to more than 1: {self.rates}")

    def __repr__(self):
        return "FaultRates(" + ", ".join(f"{k}={v:g}" for k, v in self.rates.items()) + ")"


class FaultyLink(LinkWrapper):
    """Wraps ``link``; ``to_device`` and ``from_device`` are the `FaultRates` of each direction.

    ``faults[direction][kind]`` counts what was done (direction "to_device" or "from_device");
    ``bytes[direction]`` counts the bytes that passed in (before damage). Attributes it lacks
    are the wrapped link's.
    """

    def __init__(self, link, to_device=None, from_device=None, seed=0):
        super().__init__(link, f"faulty {link.name}")
        self._rates = {"to_device": to_device or FaultRates(),
                       "from_device": from_device or FaultRates()}
        self._rng = random.Random(seed)
        self._held = {"to_device": bytearray(), "from_device": bytearray()}
        self.faults = {d: dict.fromkeys(FAULTS, 0) for d in self._rates}
        self.bytes = dict.fromkeys(self._rates, 0)

    def _damage(self, direction, data):
        rates = self._rates[direction].rates
        count = self.faults[direction]
        held = self._held[direction]
        out = bytearray()
        for byte in data:
            r = self._rng.random()
            if r < rates["flip"]:
                byte ^= 1 << self._rng.randrange(8)
                count["flip"] += 1
            elif (r := r - rates["flip"]) < rates["drop"]:
                count["drop"] += 1
                continue
            elif (r := r - rates["drop"]) < rates["duplicate"]:
                out.append(byte)
                count["duplicate"] += 1
            elif r - rates["duplicate"] < rates["delay"]:
                held.append(byte)
                count["delay"] += 1
                continue
            out.append(byte)
            if held:                     # what was held back comes out behind this byte
                out += held
                held.clear()
        self.bytes[direction] += len(data)
        return bytes(out)

    def write(self, data):
        damaged = self._damage("to_device", data)
        if damaged:
            self.link.write(damaged)

    def read_some(self, timeout, want=1):
        while True:
            damaged = self._damage("from_device", self.link.read_some(timeout, want))
            if damaged:
                return damaged


class BitFlipLink(LinkWrapper):
    """Wraps ``link``; once `arm` has been called, flips one bit of one byte: bit ``bit`` of
    the ``index``-th byte (from 0, counted from the `arm`) going ``direction`` ("to_device" or
    "from_device"). ``flipped`` says whether it has happened; ``bytes`` counts each direction's
    bytes since the `arm` (a sweep's first, unflipped run measures an exchange with it)."""

    def __init__(self, link):
        super().__init__(link, f"bit-flipping {link.name}")
        self._target = None
        self.flipped = False
        self.bytes = {"to_device": 0, "from_device": 0}

    def arm(self, direction=None, index=0, bit=0):
        """Count bytes from now on; flip the given one (none if ``direction`` is None)."""
        if direction not in (None, "to_device", "from_device"):
            raise ValueError(f"direction must be 'to_device' or 'from_device', not {direction!r}")
        self._target = None if direction is None else (direction, index, bit)
        self.flipped = False
        self.bytes = {"to_device": 0, "from_device": 0}

    def _pass(self, direction, data):
        start = self.bytes[direction]
        self.bytes[direction] += len(data)
        if self._target is None or self.flipped or self._target[0] != direction:
            return data
        _, index, bit = self._target
        if not start <= index < start + len(data):
            return data
        out = bytearray(data)
        out[index - start] ^= 1 << bit
        self.flipped = True
        return bytes(out)

    def write(self, data):
        self.link.write(self._pass("to_device", data))

    def read_some(self, timeout, want=1):
        return self._pass("from_device", self.link.read_some(timeout, want))
