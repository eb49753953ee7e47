"""Random GGUF blocks and block activations for the tests (well-formed unless asked not to be)."""

import numpy as np

from systolica.host.block_formats import BLOCK

SPECIAL_HALVES = [0x0000, 0x8000, 0x0001, 0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0xBC00]
INF_NAN_HALVES = [0x7C00, 0xFC00, 0x7E00, 0x7C01]


def random_halves(rng, shape, special=0.2):
    """Finite binary16 patterns of every kind; a fraction ``special`` from `SPECIAL_HALVES`
    (zeros, subnormals, largest finite, ±1)."""
    bits = rng.integers(0, 0x7C00, size=shape) | (rng.integers(0, 2, size=shape) << 15)
    pick = rng.random(shape) < special
    bits[pick] = rng.choice(SPECIAL_HALVES, size=int(pick.sum()))
    return bits.astype(np.uint16)


def random_blocks(fmt, rows, n_blocks, rng, special=0.2):
    """(rows, n_blocks * block_bytes) uint8: random quants, random finite scales."""
    raw = rng.integers(0, 256, size=(rows, n_blocks, fmt.block_bytes), dtype=np.uint8)
    for s in range(2 if fmt.has_offset else 1):
        half = random_halves(rng, (rows, n_blocks), special)
        raw[..., 2 * s:2 * s + 2] = half[..., None].view(np.uint8).reshape(rows, n_blocks, 2)
    return raw.reshape(rows, -1)


def random_activations(rng, n, k, kind="random", special=0.2):
    """int8 block activations in [-127, 127] and their binary16 scales."""
    if kind == "random":
        xq = rng.integers(-127, 128, size=(n, k))
    elif kind == "max":
        xq = np.full((n, k), 127)
    elif kind == "min":
        xq = np.full((n, k), -127)
    else:
        raise ValueError(f"unknown activation kind {kind!r}")
    return xq.astype(np.int8), random_halves(rng, (n, k // BLOCK), special)
