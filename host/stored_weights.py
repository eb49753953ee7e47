"""Weights resident in the device's DRAM: their stored GEMM payloads, and the GEMM_DRAM commands
that use them.

A GEMM_DRAM (`systolica.protocol`) is a GEMM whose payload the device reads from its DRAM
instead of the link: the *stored GEMM payload*, exactly the bytes a GEMM frame of the same
arguments carries after its header (the padded weights, then the CRC word). The host writes
weights there once (WRITE_DRAM) and then multiplies them against any activations, as often as
it likes, with a 32-byte header on the link instead of the weights.

A payload belongs to one GEMM command, and the driver cuts a GEMM into several
(`gemm_plan.pieces`: K passes of at most ``max_k``, pieces of at most 65535 output columns;
N does not matter, as only the header carries it). `layout` cuts the weights the same way,
builds each piece's payload with the code that builds a GEMM frame for the link
(`frames.gemm_command`, `frames.gemm_blocks_command`, header stripped) and lays the payloads
back to back from one address; the `StoredWeights` it returns lists the pieces (`StoredGemm`:
which weights, the command's K and arg2, where the payload is and its length). `Driver.gemm` and
`Driver.gemm_blocks` take a `StoredWeights` in place of the weights and send each piece's
GEMM_DRAM where they would have sent its GEMM, for every row block of the activations. A
block-format GEMM_DRAM may set `protocol.PAIR_SUM` (`StoredGemm.command`'s ``pair_sum``): the
device then sends the sums of result rows 2t and 2t+1, not the rows; one whose results are one
row may set `protocol.ARGMAX` (``argmax``): the device then sends only the largest result's
column and value.

The payloads depend on the device's configuration (its link width pads the vectors and sizes
the CRC word, its ``cols`` cuts the column tiles, its ``max_k`` the K passes): stored weights
serve only a device of the same configuration (`StoredWeights.config`).
"""

import dataclasses

import numpy as np

from systolica.config import Config
from systolica.protocol import (
    ARGMAX,
    DRAM_WORD_BYTES,
    HEADER_BYTES,
    PAIR_SUM,
    pad_to_words,
    unpack_header,
)

from . import gemm_plan
from .frames import gemm_blocks_command, gemm_command, gemm_dram_command
from .operands import check_block_weights, check_int8

__all__ = ["StoredGemm", "StoredWeights", "check_dram_range", "layout", "stored_payload"]


def check_dram_range(config, address, size, what="the range"):
    """ValueError unless the device of ``config`` has DRAM, ``address`` is a whole number of
    DRAM words and ``size`` bytes from it lie inside the DRAM."""
    if not config.dram_mib:
        raise ValueError("the device has no DRAM (its IDENTIFY reports dram_mib = 0)")
    if not isinstance(address, (int, np.integer)) or isinstance(address, bool) or address < 0:
        raise ValueError(f"a DRAM address must be a non-negative integer, not {address!r}")
    if address % DRAM_WORD_BYTES:
        raise ValueError(f"DRAM address 0x{address:x} is not a multiple of the DRAM word "
                         f"({DRAM_WORD_BYTES} bytes)")
    total = config.dram_mib << 20
    if address + size > total:
        raise ValueError(f"{what}, {size} bytes from 0x{address:x}, ends at "
                         f"0x{address + size:x}, beyond the device's {config.dram_mib} MiB of "
                         f"DRAM (0x{total:x})")


def stored_payload(command):
    """What a GEMM command frame (`frames.gemm_command`, `frames.gemm_blocks_command`) carries
    after its header, padded to whole DRAM words: its stored GEMM payload. Returns (its header,
    as a `protocol.Header`; the bytes)."""
    header = unpack_header(command[:HEADER_BYTES])
    return header, pad_to_words(command[HEADER_BYTES:], DRAM_WORD_BYTES)


@dataclasses.dataclass(frozen=True)
class StoredGemm:
    """One GEMM command's weights in the DRAM.

    Attributes
    ----------
    k0, k, c0, m : int
        Its part of the weights (a `gemm_plan.Piece`): K rows from ``k0``, output columns from
        ``c0``; ``k`` is the command's K (arg1) and ``m`` its M.
    arg2 : int
        The command's arg2: M | format << 24.
    address : int
        Byte address of its stored payload (GEMM_DRAM's arg3).
    length : int
        Bytes of the payload without its CRC word (the GEMM frame's ``length``: GEMM_DRAM's
        info).
    """

    k0: int
    k: int
    c0: int
    m: int
    arg2: int
    address: int
    length: int

    def command(self, n, *, tag=0, pair_sum=False, argmax=False):
        """The GEMM_DRAM that multiplies the loaded (n×k) activations by these weights; with
        ``pair_sum``, its arg2 sets `protocol.PAIR_SUM`: the device sends the sums of result
        rows 2t and 2t+1 (block formats only, ``n`` even; the device must report
        `protocol.Feature.PAIR_SUM`); with ``argmax``, `protocol.ARGMAX`: the device sends the
        column of the largest result and its value instead of the row (block formats only,
        results of one row: ``n`` 1, or 2 with ``pair_sum``; the device must report
        `protocol.Feature.ARGMAX`)."""
        arg2 = self.arg2
        if (pair_sum or argmax) and not self.arg2 >> 24:
            raise ValueError(f"{'pair_sum' if pair_sum else 'argmax'} needs weights in a block "
                             "format, not int8")
        if pair_sum:
            if n % 2:
                raise ValueError(f"pair_sum needs an even number of activation rows, not n = {n}")
            arg2 |= PAIR_SUM
        if argmax:
            if n != (2 if pair_sum else 1):
                raise ValueError(f"argmax needs results of one row: n = 1 (2 with pair_sum), "
                                 f"not n = {n}")
            arg2 |= ARGMAX
        return gemm_dram_command(n, self.k, arg2, self.address, self.length, tag=tag)


@dataclasses.dataclass(frozen=True)
class StoredWeights:
    """Weights stored in a device's DRAM by `layout` (`Driver.store_gemm_weights`).

    Attributes
    ----------
    fmt : str
        "int8" (an int8 K×M matrix) or a block format's name (GGUF blocks of M rows).
    k, m : int
        The weights' K and M.
    address, size : int
        The DRAM bytes they take: ``size`` from ``address`` on (`end`).
    pieces : tuple of StoredGemm
        One a GEMM command, in the order the driver sends them.
    config : Config
        The configuration of the device they were laid out for.
    """

    fmt: str
    k: int
    m: int
    address: int
    size: int
    pieces: tuple
    config: Config

    @property
    def end(self):
        """The first byte address after them."""
        return self.address + self.size

    def passes(self):
        """The pieces grouped by K pass (`gemm_plan.passes`)."""
        return gemm_plan.passes(self.pieces)


def layout(config, weights, fmt, address):
    """The stored GEMM payloads of ``weights`` for a device of ``config``, from ``address`` on.

    Parameters
    ----------
    config : Config
        The device's configuration (with DRAM).
    weights : numpy array
        int8 W (K, M) for ``fmt`` "int8", as `Driver.gemm` takes it; else the (M, K/32 *
        block_bytes) uint8 GGUF blocks, as `Driver.gemm_blocks` takes them.
    fmt : str or BlockFormat
        "int8" or a block format the device carries.
    address : int
        Where the first payload goes: a multiple of `protocol.DRAM_WORD_BYTES`.

    Returns (`StoredWeights`, the bytes to write from ``address`` on). ValueError if the
    operands are bad or the payloads do not fit the DRAM from ``address`` on.
    """
    check_dram_range(config, address, 0)
    if fmt == "int8":
        check_int8("w", weights)
        k, m = weights.shape
        block_fmt = None

        def command(p):
            return gemm_command(weights[p.k0:p.k0 + p.k, p.c0:p.c0 + p.m], 0, config)
    else:
        block_fmt, k = check_block_weights(weights, fmt, config)
        m = weights.shape[0]

        def command(p):
            return gemm_blocks_command(weights[p.c0:p.c0 + p.m], block_fmt, 0, config)

    pieces, parts, at = [], [], address
    for piece in gemm_plan.pieces(config, k, m, block_fmt):
        header, data = stored_payload(command(piece))
        pieces.append(StoredGemm(*piece, arg2=header.arg2, address=at, length=header.length))
        parts.append(data)
        at += len(data)
    check_dram_range(config, address, at - address, "the stored weights")
    name = "int8" if block_fmt is None else block_fmt.name
    stored = StoredWeights(name, k, m, address, at - address, tuple(pieces), config)
    return stored, b"".join(parts)
