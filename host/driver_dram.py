"""The `Driver`'s commands for a device with DRAM (`DramCommands`): WRITE_DRAM, DRAM_CHECK, and
GEMM weights stored there once (`stored_weights`) for GEMM_DRAMs to multiply; and
`StoredWeightsCorrupt`, what a GEMM_DRAM whose stored payload fails its CRC check raises."""

import numpy as np

from systolica.fp32_model import f32_order_key
from systolica.protocol import (
    DRAM_WORD_BYTES,
    MAX_WRITE_DRAM,
    Feature,
    Op,
    Status,
    crc_word_bytes,
)

from .frames import (
    DeviceError,
    ProtocolError,
    dram_check_command,
    load_a_blocks_command,
    write_dram_command,
)
from .operands import check_block_activations
from .stored_weights import StoredWeights, check_dram_range, layout

__all__ = ["DramCommands", "StoredWeightsCorrupt"]


class StoredWeightsCorrupt(DeviceError):
    """A GEMM_DRAM's stored payload failed its CRC check (``BAD_CRC``): the DRAM does not hold
    what was stored there (overwritten, or never written). Not tried again: store the weights
    again. ``piece`` is the `stored_weights.StoredGemm` it ran."""

    def __init__(self, error, piece):
        super().__init__(error.op, error.status, error.arg0)
        self.piece = piece
        self.args = (f"the stored GEMM payload at DRAM 0x{piece.address:x} ({piece.length} "
                     f"bytes and its CRC word: weights K {piece.k0}..{piece.k0 + piece.k - 1}, "
                     f"columns {piece.c0}..{piece.c0 + piece.m - 1}) fails its CRC check "
                     "(BAD_CRC): the DRAM does not hold the payload stored there (overwritten, "
                     "or never written); store the weights again",)


class DramCommands:
    """The `Driver`'s commands for a device with DRAM (``config.dram_mib``), which `Driver`
    inherits: they use its ``config``, ``max_payload``, ``session``, ``_send``, ``_expect``,
    ``_retrying`` and (`argmax_blocks`) ``_load_and_multiply``."""

    def write_dram(self, address, data):
        """Store ``data`` (bytes-like) in the device's DRAM from byte ``address`` on, padded
        with zero bytes to whole DRAM words (`protocol.DRAM_WORD_BYTES`); returns the bytes
        written (``data`` padded).

        ``address`` must be a multiple of a DRAM word and the padded data must lie inside the
        device's DRAM (``config.dram_mib``), else ValueError before anything is sent (so on a
        device without DRAM). The data go in WRITE_DRAM commands of at most
        `protocol.MAX_WRITE_DRAM` bytes (with ``max_payload``, about that many), each tried
        again like a GEMM's exchange (a WRITE_DRAM stores its payload even when it arrives
        damaged, so writing it again is the cure).
        """
        view = memoryview(data).cast("B")
        size = -(-len(view) // DRAM_WORD_BYTES) * DRAM_WORD_BYTES
        check_dram_range(self.config, address, size, "the data")
        step = MAX_WRITE_DRAM
        if self.max_payload is not None:
            step = min(step, max(DRAM_WORD_BYTES, self.max_payload // DRAM_WORD_BYTES
                                 * DRAM_WORD_BYTES))
        for offset in range(0, len(view), step):
            piece = bytes(view[offset:offset + step])
            piece += bytes(-len(piece) % DRAM_WORD_BYTES)
            at = address + offset

            def write(_retry, at=at, piece=piece):
                tag = self.session.next_tag()
                self._send(write_dram_command(at, piece, self.config, tag=tag), kind="dram")
                reply = self._expect(Op.WRITE_DRAM, tag=tag)
                if reply.args[0] != at:
                    raise ProtocolError(f"WRITE_DRAM reply says address 0x{reply.args[0]:x}, "
                                        f"sent 0x{at:x}")

            self._retrying(f"WRITE_DRAM of {len(piece)} bytes at 0x{at:x}", write)
        return size

    def check_dram(self, address, length):
        """Whether the ``length`` bytes stored at ``address`` still check against the CRC word
        stored after them (DRAM_CHECK: the device reads them back and checks; nothing but a
        header crosses the link each way). ValueError (nothing sent) for a range outside the
        DRAM or misaligned; a damaged exchange is tried again like any other."""
        if length <= 0 or length % DRAM_WORD_BYTES:
            raise ValueError(f"a DRAM_CHECK length must be a positive multiple of the DRAM word "
                             f"({DRAM_WORD_BYTES} bytes), not {length!r}")
        check_dram_range(self.config, address, length + crc_word_bytes(self.config.link_bytes),
                         "the bytes and their CRC word")

        def check(_retry):
            tag = self.session.next_tag()
            self._send(dram_check_command(address, length, tag=tag), kind=None)
            try:
                self._expect(Op.DRAM_CHECK, tag=tag)
            except DeviceError as exc:
                if exc.status == Status.BAD_CRC:
                    return False
                raise
            return True

        return self._retrying(f"DRAM_CHECK of {length} bytes at 0x{address:x}", check)

    def check_stored(self, stored):
        """The pieces of `StoredWeights` ``stored`` whose stored payloads fail their CRC check
        (`check_dram` of each); an empty list when the DRAM holds them all intact."""
        return [p for p in stored.pieces if not self.check_dram(p.address, p.length)]

    def store_gemm_weights(self, weights, fmt="int8", *, address=0):
        """Store GEMM weights in the device's DRAM from byte ``address`` on; returns the
        `StoredWeights` that `gemm` (int8) or `gemm_blocks` (block formats) take in their
        place.

        ``weights`` are what `gemm` (int8 K×M, ``fmt`` "int8") or `gemm_blocks` (M rows of
        GGUF blocks of ``fmt``) take. What is stored is the payload of each GEMM command those
        would send (`stored_weights.layout`), back to back; ``StoredWeights.end`` is the first
        byte after them. ValueError (nothing sent) for bad weights, a device without DRAM, a
        misaligned address or weights that do not fit the DRAM from there.
        """
        stored, image = layout(self.config, weights, fmt, address)
        self.write_dram(address, image)
        return stored

    def _check_stored(self, stored, fmt, k):
        """ValueError unless ``stored`` holds ``fmt`` weights of K = ``k`` for this device."""
        if stored.fmt != fmt:
            raise ValueError(f"the stored weights are {stored.fmt}, not {fmt}")
        if stored.k != k:
            raise ValueError(f"the activations have K = {k}, the stored weights K = {stored.k}")
        if stored.config != self.config:
            raise ValueError(f"the weights were stored for a device of {stored.config.label()}, "
                             f"this one is {self.config.label()}")

    def argmax_blocks(self, xq, xd, stored, *, pair_sum=False):
        """The column of the largest result of one row of X·Wᵀ with block weights stored in the
        device's DRAM, and that result; only those cross the link (`protocol.ARGMAX`).

        Parameters
        ----------
        xq, xd : as `gemm_blocks` takes them, of one row (two with ``pair_sum``: the two int8
            terms of one activation row, which the device adds, `gemm_blocks`' ``pair_sum``).
        stored : `StoredWeights` in a block format (`store_gemm_weights`), of one K pass (K at
            most ``max_k``).
        pair_sum : bool
            The device adds the two rows' results first (`protocol.PAIR_SUM`).

        Returns ``(column, value)``: an int and the binary32 result as np.float32. Results are
        compared as numbers, -0 equal to +0 (`systolica.fp32_model.f32_order_key`), and the
        first (lowest column) of equal ones wins: `gemm_blocks`' row (its pair sums with
        ``pair_sum``), bit for bit, and its argmax so compared. One GEMM_DRAM per stored piece
        (column range), each answered with its piece's largest; the host keeps the largest of
        those. ValueError (nothing sent) unless the device reports `Feature.ARGMAX` (and
        `Feature.PAIR_SUM` with ``pair_sum``) and the operands are as above; a stored payload
        that fails its CRC check raises `StoredWeightsCorrupt`.
        """
        cfg = self.config
        if not isinstance(stored, StoredWeights) or stored.fmt == "int8":
            raise ValueError("stored: argmax_blocks needs block weights stored in the device's "
                             "DRAM (a StoredWeights in q8_0, q4_0 or q4_1): only a GEMM_DRAM "
                             "sends an argmax")
        if Feature.ARGMAX not in cfg.features:
            raise ValueError(f"argmax_blocks: the device ({cfg.label()}) does not find the "
                             "argmax (its IDENTIFY reports no Feature.ARGMAX)")
        if pair_sum and Feature.PAIR_SUM not in cfg.features:
            raise ValueError(f"pair_sum: the device ({cfg.label()}) does not add pair sums "
                             "(its IDENTIFY reports no Feature.PAIR_SUM)")
        check_block_activations(xq, xd)
        n, k = xq.shape
        if n != (2 if pair_sum else 1):
            raise ValueError(f"xq must hold one row of activations (two terms with pair_sum), "
                             f"not N = {n}{' with pair_sum' if pair_sum else ''}")
        if k > cfg.max_k:
            raise ValueError(f"xq's K = {k} is more than the device's max_k = {cfg.max_k}: the "
                             "argmax needs one K pass")
        self._check_stored(stored, stored.fmt, k)

        def command(tag, p):
            return p.command(n, tag=tag, pair_sum=pair_sum, argmax=True)

        best = None         # (order key, column, bits)
        for p, (column, bits) in self._load_and_multiply(
                lambda tag: load_a_blocks_command(xq, xd, cfg, tag=tag), (n, k),
                stored.pieces, command, stored=True, pair_sum=pair_sum, argmax=True):
            found = (int(f32_order_key(bits)), p.c0 + column, bits)
            if best is None or found[0] > best[0] or (found[0] == best[0]
                                                      and found[1] < best[1]):
                best = found
        return best[1], np.array(best[2], dtype=np.uint32).view(np.float32)[()]
