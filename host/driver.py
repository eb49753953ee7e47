"""The host driver: IDENTIFY, then any int8 GEMM split into what the device can take, streamed
over a `Link` under the credit rule, with results, byte counts and device cycles collected, and
each exchange tried again after a damaged one; on a device with DRAM, weights stored there once
(`stored_weights`) and multiplied from there. The exchanges themselves (credit, replies,
IDENTIFY, resync, retries) are `conversation.Conversation`'s; the commands that write and check
the DRAM are in `driver_dram` (`DramCommands`); `Driver` inherits both."""

import numpy as np

from systolica.protocol import HEADER_BYTES, Feature, Op, Status

from . import gemm_plan
from .block_formats import FORMATS
from .conversation import Conversation, RetriesExhausted
from .driver_dram import DramCommands, StoredWeightsCorrupt
from .driver_stats import DriverStats
from .frames import (
    DeviceError,
    gemm_blocks_command,
    gemm_command,
    load_a_blocks_command,
    load_a_command,
)
from .operands import check_block_activations, check_block_operands, check_int8
from .stored_weights import StoredWeights

__all__ = ["Driver", "DriverStats", "RetriesExhausted", "StoredWeightsCorrupt"]


class Driver(DramCommands, Conversation):
    """Talks to one device over ``link``.

    `gemm` and `gemm_blocks` multiply; on a device with DRAM (``config.dram_mib``),
    `write_dram` stores bytes there, and `store_gemm_weights` stores weights that `gemm` and
    `gemm_blocks` then take in place of the weights themselves (`stored_weights`; these
    commands are `driver_dram.DramCommands`), and `argmax_blocks` has the device send only the
    largest result of one row of such a GEMM.

    Parameters
    ----------
    link : Link
        A `SimulatedBoardLink` or `SerialLink`; the driver does not care which.
    timeout : float
        Seconds to wait for the device to say anything before giving up with `LinkTimeout`.
    progress : callable, optional
        Called as ``progress(nbytes)`` with the size of each piece (up to 64 KiB) of the frames
        sent, as it goes out to the link, whatever the command.
    retries : int
        How many times a LOAD_A, GEMM, GEMM_DRAM or WRITE_DRAM exchange (or the first
        IDENTIFY) is tried again after it was damaged, lost or aborted on the way (a reply whose
        CRC is wrong, a ``BAD_CRC`` or ``ABORTED`` reply, a reply that does not answer it, a
        timeout once the device has said something); each retry first resynchronizes
        (`resync`, waiting ``resync_quiet`` seconds for silence). Then `RetriesExhausted`. A
        GEMM_DRAM's ``BAD_CRC`` is its stored payload's, which no retry cures
        (`StoredWeightsCorrupt`).
    max_payload : int, optional
        At most about this many payload bytes in one LOAD_A, GEMM or WRITE_DRAM (at least one
        row tile of activations, one column tile of weights, one DRAM word), so that a retry on
        a noisy line sends a piece again, not the whole matrix; weights then cross once per
        LOAD_A piece. None (the default): LOAD_As as large as the activation buffer, one GEMM
        for all M columns, WRITE_DRAMs of `protocol.MAX_WRITE_DRAM` bytes. Weights stored in
        the DRAM are cut as without it (their GEMM_DRAMs carry no payload).
    """

    def __init__(self, link, *, timeout=30.0, progress=None, retries=3, resync_quiet=0.5,
                 max_payload=None):
        if max_payload is not None and (not isinstance(max_payload, int) or max_payload < 1):
            raise ValueError(f"max_payload must be a positive integer or None, not "
                             f"{max_payload!r}")
        super().__init__(link, timeout=timeout, progress=progress, retries=retries,
                         resync_quiet=resync_quiet)
        self.max_payload = max_payload
        self._retrying("IDENTIFY", lambda _retry: self.identify())

    def _run_gemm(self, command, tag, n, k, m, kind="weights", *, pair_sum=False, argmax=False):
        """Send one GEMM (or GEMM_DRAM) command (sent with ``tag``); collect its result tiles
        (with ``pair_sum``, a GEMM_DRAM's (n/2, m) pair sums; with ``argmax``, the (column,
        bits) of its one row's largest result) and its cycles."""
        self._send(command, kind=kind)
        result = self.session.gemm_result(n, m, tag, pair_sum=pair_sum, argmax=argmax)
        while not result.add(self._next_reply(tag)):
            pass
        self.stats.device_cycles += result.cycles
        self.stats.device_gemms += 1
        self.stats.macs += n * k * m
        return result.out

    def plan(self, n, k, m, fmt=None, *, pair_sum=False):
        """How a (n×k)·(k×m) GEMM is split (`gemm_plan.plan`, with this driver's
        ``max_payload``): (rows per LOAD_A, K per pass, M per GEMM); with ``pair_sum``
        (`gemm_blocks`'), the rows per LOAD_A are even."""
        return gemm_plan.plan(self.config, n, k, m, fmt, max_payload=self.max_payload,
                              pair_sum=pair_sum)

    def gemm(self, a, w):
        """C = A·W for int8 A (N×K) and W (K×M), exactly, as int64 (N×M).

        Larger N than the activation buffer holds is split into row blocks (weights cross once per
        block), larger K than ``max_k`` into passes whose partial sums the host adds.

        ``w`` may be int8 weights stored in the device's DRAM (a `StoredWeights` from
        `store_gemm_weights`): the same GEMM, each GEMM command a GEMM_DRAM, no weights on the
        link. A stored payload that fails its CRC check raises `StoredWeightsCorrupt`.
        """
        check_int8("a", a)
        n, k = a.shape
        if isinstance(w, StoredWeights):
            self._check_stored(w, "int8", k)
            m, pieces = w.m, w.pieces
        else:
            check_int8("w", w)
            if k != w.shape[0]:
                raise ValueError(f"a is {a.shape} and w is {w.shape}: a's columns must equal "
                                 "w's rows")
            m = w.shape[1]
            pieces = gemm_plan.pieces(self.config, k, m, max_payload=self.max_payload)
        n_step = self.plan(n, k, m)[0]
        out = np.zeros((n, m), dtype=np.int64)
        for r0 in range(0, n, n_step):
            for k0, k_len, parts in gemm_plan.passes(pieces):
                part = a[r0:r0 + n_step, k0:k0 + k_len]
                rows = part.shape[0]

                def command(tag, p, rows=rows):
                    if isinstance(w, StoredWeights):
                        return p.command(rows, tag=tag)
                    return gemm_command(w[p.k0:p.k0 + p.k, p.c0:p.c0 + p.m], rows, self.config,
                                        tag=tag)

                for p, block in self._load_and_multiply(
                        lambda tag, part=part: load_a_command(part, self.config, tag=tag),
                        part.shape, parts, command, stored=isinstance(w, StoredWeights)):
                    out[r0:r0 + rows, p.c0:p.c0 + p.m] += block
        return out

    def gemm_blocks(self, xq, xd, raw, fmt=None, *, pair_sum=False):
        """C = X·Wᵀ with GGUF block weights, on the device's block datapath.

        Parameters
        ----------
        xq, xd : int8 activations (N, K) in [-127, 127] and their binary16 block scales
            (N, K/32, uint16 patterns), e.g. from `block_formats.quantize_activations`.
        raw : uint8 (M, K/32 * block_bytes): the weight tensor's rows of blocks as in the file;
            or such weights stored in the device's DRAM (a `StoredWeights` from
            `store_gemm_weights`: each GEMM command is then a GEMM_DRAM, and a stored payload
            that fails its CRC check raises `StoredWeightsCorrupt`).
        fmt : str or BlockFormat ("q8_0", "q4_0", "q4_1"); with stored weights, optional (if
            given, it must be theirs).
        pair_sum : bool
            Have the device add each pair of rows: rows 2t and 2t+1 of ``xq`` are the two int8
            terms of one activation row t (`block_formats.quantize_activation_terms`, its rows
            interleaved), and the device sends only the binary32 sum of their results
            (`systolica.fp32_model.f32_add`; `protocol.PAIR_SUM`), half the result bytes.
            Needs stored weights, a device whose IDENTIFY reports `Feature.PAIR_SUM` and an
            even N (else ValueError, nothing sent); the row blocks are then even.

        Returns the binary32 results (N, M) as float32, bit-exactly what
        `block_formats.block_gemm_reference` computes; with ``pair_sum``, (N/2, M): row t is
        ``f32_add`` of the reference's rows 2t and 2t+1. N beyond the activation buffer is split
        into row blocks; K must fit the device (``max_k``): block sums are not split along K.
        """
        cfg = self.config
        stored = isinstance(raw, StoredWeights)
        if pair_sum:
            if not stored:
                raise ValueError("pair_sum needs weights stored in the device's DRAM (a "
                                 "StoredWeights): only a GEMM_DRAM sends pair sums")
            if Feature.PAIR_SUM not in cfg.features:
                raise ValueError(f"pair_sum: the device ({cfg.label()}) does not add pair sums "
                                 "(its IDENTIFY reports no Feature.PAIR_SUM)")
        if stored:
            check_block_activations(xq, xd)
            if raw.fmt == "int8":
                raise ValueError("the stored weights are int8: `gemm` multiplies them")
            self._check_stored(raw, getattr(fmt, "name", fmt) or raw.fmt, xq.shape[1])
            fmt = FORMATS[raw.fmt]
            m, pieces = raw.m, raw.pieces
        else:
            if fmt is None:
                raise ValueError("fmt must be given with block weights (q8_0, q4_0 or q4_1)")
            fmt = check_block_operands(xq, xd, raw, fmt, cfg)
            m = raw.shape[0]
            pieces = gemm_plan.pieces(cfg, xq.shape[1], m, fmt, max_payload=self.max_payload)
        n, k = xq.shape
        if pair_sum and n % 2:
            raise ValueError(f"pair_sum needs an even number of rows in xq (two terms each), "
                             f"not N = {n}")
        n_step = self.plan(n, k, m, fmt, pair_sum=pair_sum)[0]
        half = 2 if pair_sum else 1          # rows sent per output row
        out = np.zeros((n // half, m), dtype=np.uint32)
        for r0 in range(0, n, n_step):
            rows = min(n_step, n - r0)

            def command(tag, p, rows=rows):
                if stored:
                    return p.command(rows, tag=tag, pair_sum=pair_sum)
                return gemm_blocks_command(raw[p.c0:p.c0 + p.m], fmt, rows, cfg, tag=tag)

            for p, block in self._load_and_multiply(
                    lambda tag, r0=r0, rows=rows: load_a_blocks_command(
                        xq[r0:r0 + rows], xd[r0:r0 + rows], cfg, tag=tag),
                    (rows, k), pieces, command, stored=stored, pair_sum=pair_sum):
                out[r0 // half:(r0 + rows) // half, p.c0:p.c0 + p.m] = block.astype(np.uint32)
        return out.view(np.float32)

    def _load_and_multiply(self, load_a, shape, pieces, gemm, *, stored=False, pair_sum=False,
                           argmax=False):
        """LOAD_A (``load_a(tag)`` its bytes, of ``shape``; not sent when the device holds
        them already from the last LOAD_A it took), then one GEMM per piece of one K
        pass (``gemm(tag, piece)`` its bytes; a `gemm_plan.Piece`, or with ``stored`` a
        `StoredGemm` and the bytes its GEMM_DRAM, with ``pair_sum`` one that sets
        `protocol.PAIR_SUM`, with ``argmax`` `protocol.ARGMAX`: its result is then (column,
        bits)); yields ``(piece, result)``. Each exchange is
        tried again after a damaged, lost or aborted one, A loaded again first; a GEMM_DRAM's
        ``BAD_CRC`` (its stored payload's, not the link's) raises `StoredWeightsCorrupt`."""
        n = shape[0]
        name = "GEMM_DRAM" if stored else "GEMM"

        def load(again=False):
            """LOAD_A, unless the device already holds these activations from the last one it
            took (the same input to q, k and v, or to gate and up) and ``again`` is False."""
            tag = self.session.next_tag()
            command = load_a(tag)
            # The frame but for its tag (header byte 3) and the header's CRC, which covers it.
            held = bytes(command[:3] + command[4:HEADER_BYTES - 4] + command[HEADER_BYTES:])
            if held == self._loaded and not again:
                self.stats.loads_skipped += 1
                return
            self._loaded = None
            self._send(command, kind="act")
            self._expect(Op.LOAD_A, shape=shape, tag=tag)
            self._loaded = held

        self._retrying(f"LOAD_A of A {shape}", load)
        for piece in pieces:
            def multiply(retry, piece=piece):
                if retry:
                    load(True)      # the device may have lost A (an aborted command)
                tag = self.session.next_tag()
                try:
                    return self._run_gemm(gemm(tag, piece), tag, n, piece.k, piece.m,
                                          kind=None if stored else "weights",
                                          pair_sum=pair_sum, argmax=argmax)
                except DeviceError as exc:
                    if stored and exc.status == Status.BAD_CRC:
                        raise StoredWeightsCorrupt(exc, piece) from None
                    raise

            yield piece, self._retrying(
                f"{name} of N={n} K={piece.k} M={piece.m} (columns from {piece.c0})", multiply)
