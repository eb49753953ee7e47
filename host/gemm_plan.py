"""How the host cuts a GEMM into what the device takes: LOAD_As that fit the activation buffer,
passes of at most ``max_k``, and (on a noisy line) pieces small enough to arrive whole."""

from typing import NamedTuple

from systolica.protocol import BLOCK, load_a_tile_bytes, padded

__all__ = ["Piece", "passes", "pieces", "plan"]


class Piece(NamedTuple):
    """The part of the weights one GEMM command carries: rows ``k0`` .. ``k0 + k - 1`` (along
    K) of output columns ``c0`` .. ``c0 + m - 1``."""

    k0: int
    k: int
    c0: int
    m: int


def plan(config, n, k, m, fmt=None, *, max_payload=None, pair_sum=False):
    """(rows per LOAD_A, K per pass, M per GEMM) for a (n×k)·(k×m) GEMM on a device of
    ``config``; ``fmt`` is the weights' `BlockFormat` (None: int8). With ``max_payload``, a
    LOAD_A or GEMM carries at most about that many payload bytes: whole row (column) tiles if
    one fits, else part of one, at least one row (column). With ``pair_sum`` (GEMM_DRAMs whose
    device adds rows 2t and 2t+1: `protocol.PAIR_SUM`) the rows per LOAD_A are even, at least
    two, so no pair is cut."""
    k_step = min(k, config.max_k)
    tiles = max(config.act_depth // k_step, 1)
    n_step = min(n, tiles * config.rows, 0xFFFF)
    m_step = min(m, 0xFFFF)
    if max_payload is not None:
        n_step = min(n_step, _fit(config.rows, max_payload,
                                  lambda r: activation_bytes(config, r, k_step, fmt)))
        m_step = min(m_step, _fit(config.cols, max_payload,
                                  lambda c: weight_bytes(config, c, k_step, fmt)))
    if pair_sum:
        n_step = max(n_step - n_step % 2, 2)
    return n_step, k_step, m_step


def _fit(tile, limit, payload):
    """The most rows (columns) whose payload, ``payload(count)`` bytes, is at most ``limit``."""
    tiles = limit // payload(tile)
    if tiles:
        return tiles * tile
    return max((c for c in range(1, tile) if payload(c) <= limit), default=1)


def activation_bytes(config, rows, k, fmt=None):
    """LOAD_A payload bytes of ``rows`` (≤ a row tile) and ``k``, as the protocol lays them out
    (`protocol.load_a_tile_bytes`; block activations: a scale vector a block)."""
    return load_a_tile_bytes(rows, k, config.rows, config.link_bytes, blocks=fmt is not None)


def weight_bytes(config, cols, k, fmt=None):
    """GEMM payload bytes of ``cols`` weight columns (≤ a column tile) and ``k``."""
    lb = config.link_bytes
    if fmt is None:
        return k * padded(cols, lb)
    return k // BLOCK * padded(cols * fmt.block_bytes, lb)


def pieces(config, k, m, fmt=None, *, max_payload=None):
    """The `Piece` of each GEMM command of a (·×k)·(k×m) GEMM (`plan`'s K passes and M per
    GEMM, which do not depend on N), K pass after K pass, columns in order within a pass: the
    order the driver sends them in, after each pass's LOAD_A."""
    _, k_step, m_step = plan(config, 1, k, m, fmt, max_payload=max_payload)
    return [Piece(k0, min(k_step, k - k0), c0, min(m_step, m - c0))
            for k0 in range(0, k, k_step) for c0 in range(0, m, m_step)]


def passes(pieces):
    """``pieces`` (in `pieces`' order) grouped by K pass: a list of (k0, k, [its pieces])."""
    out = []
    for piece in pieces:
        if not out or out[-1][0] != piece.k0:
            out.append((piece.k0, piece.k, []))
        out[-1][2].append(piece)
    return out
