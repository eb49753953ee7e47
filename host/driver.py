"""The host driver: IDENTIFY, then any int8 GEMM split into what the device can take, streamed
over a `Link` under the credit rule, with results, byte counts and device cycles collected."""

import dataclasses
import time

import numpy as np

from systolica.protocol import Op

from .block_formats import BLOCK, FORMATS, BlockFormat
from .frames import (
    gemm_blocks_command,
    gemm_command,
    load_a_blocks_command,
    load_a_command,
)
from .link import LinkTimeout
from .session import Session

__all__ = ["Driver", "DriverStats"]


@dataclasses.dataclass
class DriverStats:
    """What crossed the link and what the device reported, since the driver was opened."""

    bytes_out: int = 0           # host → device, all frames
    weight_bytes_out: int = 0    # host → device in GEMM frames (weights, headers, padding)
    act_bytes_out: int = 0       # host → device in LOAD_A frames
    bytes_in: int = 0            # device → host, all frames
    device_cycles: int = 0       # sum of the GEMM replies' cycle counts
    device_gemms: int = 0        # GEMM commands the device ran
    macs: int = 0                # multiply-accumulates those GEMMs did (N·K·M each)
    resyncs: int = 0             # conversations started over (`Driver.resync`)
    discarded_in: int = 0        # received bytes dropped by resyncs (unread or not a reply)

    def utilization(self, config):
        if not self.device_cycles:
            return 0.0
        return self.macs / (config.rows * config.cols * self.device_cycles)


def _check_int8(name, x, ndim=2):
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, not {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, not shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must have an integer dtype (int8 values), not {x.dtype}")
    if x.size and (x.min() < -128 or x.max() > 127):
        raise ValueError(f"{name} has values outside int8 [-128, 127]: "
                         f"min {x.min()}, max {x.max()}")
    if 0 in x.shape:
        raise ValueError(f"{name} must not be empty, shape {x.shape}")


class Driver:
    """Talks to one device over ``link``.

    Parameters
    ----------
    link : Link
        A `SimulatedBoardLink` or `SerialLink`; the driver does not care which.
    timeout : float
        Seconds to wait for the device to say anything before giving up with `LinkTimeout`.
    progress : callable, optional
        Called as ``progress(done_bytes, total_bytes)`` while a GEMM streams.
    """

    def __init__(self, link, *, timeout=30.0, progress=None):
        self.link = link
        self.timeout = timeout
        self.progress = progress
        self.stats = DriverStats()
        self.session = Session()
        self.config = self.identify()

    # --- the wire --------------------------------------------------------------------------

    def _receive(self, timeout):
        try:
            data = (self.link.read_some(timeout, self.session.missing()) if timeout > 0
                    else self.link.poll())
        except LinkTimeout:
            raise LinkTimeout(f"{self.link.name}: the device stopped answering "
                              f"({self.timeout:g} s without a byte){self._discarded()}") from None
        self.stats.bytes_in += len(data)
        self.session.feed(data)

    def _discarded(self):
        """What the frame reader dropped as not a valid reply, for error messages."""
        reader = self.session.reader
        if not reader.discarded:
            return ""
        return (f"; {reader.discarded} received bytes were not a valid reply (last: "
                f"{reader.problems[-1]})")

    def _send(self, data, *, kind=None):
        """Send ``data`` without exceeding the device's credit, taking replies meanwhile."""
        self.session.send(data)
        self._flush(kind)

    def _flush(self, kind=None):
        session = self.session
        while session.unsent:
            chunk = session.take(1 << 16)
            if chunk:
                self.link.write(chunk)
                self.stats.bytes_out += len(chunk)
                if kind == "weights":
                    self.stats.weight_bytes_out += len(chunk)
                elif kind == "act":
                    self.stats.act_bytes_out += len(chunk)
                if self.progress:
                    self.progress(len(chunk))
                self._receive(0)
            else:
                self._receive(self.timeout)

    def _next_reply(self):
        deadline = time.monotonic() + self.timeout
        while (frame := self.session.reply()) is None:
            if time.monotonic() > deadline:
                raise LinkTimeout(f"{self.link.name}: no reply in {self.timeout:g} s"
                                  f"{self._discarded()}")
            self._receive(self.timeout)
        return frame

    def _expect(self, op, *, shape=None):
        return Session.check(self._next_reply(), op, shape=shape)

    # --- commands --------------------------------------------------------------------------

    def identify(self):
        """Ask the device for its configuration (works before the link width is known)."""
        self.session.identify()
        self._flush()
        self.config = self._expect(Op.IDENTIFY).config
        return self.config

    def resync(self, quiet=0.5):
        """Start the conversation over after something went wrong (a reply lost or damaged,
        a timeout): drop whatever the device is still sending until it has been quiet for
        ``quiet`` seconds, forget the replies and the partial frame in hand, and IDENTIFY
        again, which restarts the credit window from the device's own count. The device must
        be waiting for a header (protocol v1 has no abort for a command cut off mid-payload)."""
        dropped = self.session.reader.buffered + self.session.reader.discarded
        while True:
            try:
                dropped += len(self.link.read_some(quiet))
            except LinkTimeout:
                break
        self.session = Session()
        self.stats.resyncs += 1
        self.stats.discarded_in += dropped
        return self.identify()

    def _run_gemm(self, command, n, k, m):
        """Send one GEMM command; collect its result tiles and its cycles."""
        self._send(command, kind="weights")
        result = self.session.gemm_result(n, m)
        while not result.add(self._next_reply()):
            pass
        self.stats.device_cycles += result.cycles
        self.stats.device_gemms += 1
        self.stats.macs += n * k * m
        return result.out

    def plan(self, n, k, m):
        """How a (n×k)·(k×m) GEMM is split: (rows per LOAD_A, K per pass, M per GEMM)."""
        cfg = self.config
        k_step = min(k, cfg.max_k)
        tiles = max(cfg.act_depth // k_step, 1)
        n_step = min(n, tiles * cfg.rows, 0xFFFF)
        return n_step, k_step, min(m, 0xFFFF)

    def gemm(self, a, w):
        """C = A·W for int8 A (N×K) and W (K×M), exactly, as int64 (N×M).

        Larger N than the activation buffer holds is split into row blocks (weights cross once per
        block), larger K than ``max_k`` into passes whose partial sums the host adds.
        """
        _check_int8("a", a)
        _check_int8("w", w)
        if a.shape[1] != w.shape[0]:
            raise ValueError(f"a is {a.shape} and w is {w.shape}: a's columns must equal w's "
                             "rows")
        n, k = a.shape
        m = w.shape[1]
        n_step, k_step, m_step = self.plan(n, k, m)
        out = np.zeros((n, m), dtype=np.int64)
        for r0 in range(0, n, n_step):
            for k0 in range(0, k, k_step):
                part = a[r0:r0 + n_step, k0:k0 + k_step]
                self._send(load_a_command(part, self.config), kind="act")
                self._expect(Op.LOAD_A, shape=part.shape)
                for c0 in range(0, m, m_step):
                    block = w[k0:k0 + k_step, c0:c0 + m_step]
                    rows = part.shape[0]
                    out[r0:r0 + rows, c0:c0 + m_step] += self._run_gemm(
                        gemm_command(block, rows, self.config), rows, *block.shape)
        return out

    def gemm_blocks(self, xq, xd, raw, fmt):
        """C = X·Wᵀ with GGUF block weights, on the device's block datapath.

        Parameters
        ----------
        xq, xd : int8 activations (N, K) in [-127, 127] and their binary16 block scales
            (N, K/32, uint16 patterns), e.g. from `block_formats.quantize_activations`.
        raw : uint8 (M, K/32 * block_bytes): the weight tensor's rows of blocks as in the file.
        fmt : str or BlockFormat ("q8_0", "q4_0", "q4_1").

        Returns the binary32 results (N, M) as float32, bit-exactly what
        `block_formats.block_gemm_reference` computes. N beyond the activation buffer is split
        into row blocks; K must fit the device (``max_k``): block sums are not split along K.
        """
        cfg = self.config
        if not isinstance(fmt, BlockFormat):
            if fmt not in FORMATS:
                raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, not {fmt!r}")
            fmt = FORMATS[fmt]
        if fmt.name not in cfg.formats:
            raise ValueError(f"the device does not carry {fmt.name} (it carries "
                             f"{', '.join(cfg.formats)})")
        _check_int8("xq", xq)
        if not isinstance(xd, np.ndarray) or xd.dtype != np.uint16:
            raise ValueError(f"xd must be a uint16 array of binary16 scales, not "
                             f"{getattr(xd, 'dtype', type(xd).__name__)}")
        if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8 or raw.ndim != 2:
            raise ValueError("raw must be a 2-D uint8 array of GGUF blocks, not "
                             f"{getattr(raw, 'dtype', type(raw).__name__)} "
                             f"{getattr(raw, 'shape', '')}")
        n, k = xq.shape
        if k % BLOCK:
            raise ValueError(f"xq's K = {k} is not a multiple of {BLOCK}")
        if xd.shape != (n, k // BLOCK):
            raise ValueError(f"xd must have shape {(n, k // BLOCK)} for xq {xq.shape}, not "
                             f"{xd.shape}")
        if raw.shape[1] != k // BLOCK * fmt.block_bytes:
            raise ValueError(f"raw rows are {raw.shape[1]} bytes; {fmt.name} blocks for K = {k} "
                             f"take {k // BLOCK * fmt.block_bytes}")
        if k > cfg.max_k:
            raise ValueError(f"K = {k} exceeds the device's max_k = {cfg.max_k} (block formats "
                             "are not split along K)")
        m = raw.shape[0]
        n_step, _, m_step = self.plan(n, k, m)
        out = np.zeros((n, m), dtype=np.uint32)
        for r0 in range(0, n, n_step):
            rows = min(n_step, n - r0)
            self._send(load_a_blocks_command(xq[r0:r0 + rows], xd[r0:r0 + rows], cfg), kind="act")
            self._expect(Op.LOAD_A, shape=(rows, k))
            for c0 in range(0, m, m_step):
                part = raw[c0:c0 + m_step]
                result = self._run_gemm(gemm_blocks_command(part, fmt, rows, cfg), rows, k,
                                        part.shape[0])
                out[r0:r0 + rows, c0:c0 + m_step] = result.astype(np.uint32)
        return out.view(np.float32)

    def close(self):
        self.link.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
