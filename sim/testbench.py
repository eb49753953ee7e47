"""cocotb testbench layer for the accelerator behind its link, in the spirit of cocotb's
matrix_multiplier example: a link driver/monitor pair, a numpy model and a checker.

The driver plays the host: it sends frames word by word with random idle cycles and obeys the
protocol's credit rule; the monitor takes reply words with random backpressure and parses frames.
Both sides act on the falling edge and look at the settled handshake with ReadOnly, so every
transfer is seen exactly once whatever the simulator's scheduling. The protocol itself (credit,
frame dispatch, command tags, reply checks, the GEMM reply loop) is the host's own `Session`, the
same one the `Driver` uses over a link: every command goes out with the session's next tag and
its replies are checked against it.
"""

import random

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, FallingEdge, ReadOnly, with_timeout

from systolica.host.frames import (
    gemm_blocks_command,
    gemm_command,
    load_a_blocks_command,
    load_a_command,
)
from systolica.host.session import Session
from systolica.protocol import Op, line_errors

__all__ = ["LinkBench", "check_gemm", "gemm_reference"]


def gemm_reference(a, w):
    """The numpy model: exact int64 product of int8 matrices."""
    return a.astype(np.int64) @ w.astype(np.int64)


def check_gemm(got, a, w):
    """The checker: exact equality with the model, with the first mismatches in the message."""
    want = gemm_reference(a, w)
    if got.shape != want.shape or not np.array_equal(got, want):
        bad = np.argwhere(got != want)[:5] if got.shape == want.shape else "shape"
        raise AssertionError(f"GEMM {a.shape}x{w.shape} differs from numpy at {bad}")


class LinkBench:
    """Drives the DUT's ``link_rx`` and watches its ``link_tx``.

    Parameters
    ----------
    dut : cocotb handle of the accelerator top.
    link_bytes : link width of the build.
    idle : probability that the host leaves a cycle empty before a new word.
    backpressure : probability that the host is not ready to take a reply word in a cycle.
    seed : random seed for the idle and backpressure patterns.
    """

    def __init__(self, dut, link_bytes, *, idle=0.0, backpressure=0.0, seed=0):
        self.dut = dut
        self.link_bytes = link_bytes
        self.idle = idle
        self.backpressure = backpressure
        self.rng = random.Random(seed)
        self.session = Session()
        self.config = None
        self.line_errors = None       # (framing errors, overruns) at the last IDENTIFY
        self._reply_event = Event()
        self._holding = None
        self.cycle = 0

    async def start(self):
        dut = self.dut
        Clock(dut.clk, 10, unit="ns").start()
        dut.rst.value = 1
        dut.link_rx__valid.value = 0
        dut.line_errors__framing.value = 0
        dut.line_errors__overruns.value = 0
        dut.link_tx__ready.value = 0
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        import cocotb
        cocotb.start_soon(self._run())

    def send(self, data):
        lb = self.link_bytes
        if len(data) % lb:
            raise ValueError(f"frames are whole link words; {len(data)} bytes is not a multiple "
                             f"of {lb}")
        self.session.send(data)

    async def _run(self):
        dut, lb = self.dut, self.link_bytes
        while True:
            await FallingEdge(dut.clk)
            self.cycle += 1
            if self._holding is None and self.rng.random() >= self.idle:
                # A word counts as sent when it is offered: the credit covers it from then on.
                word = self.session.take(lb, unit=lb)
                if word:
                    self._holding = int.from_bytes(word, "little")
            dut.link_rx__valid.value = self._holding is not None
            if self._holding is not None:
                dut.link_rx__payload.value = self._holding
            ready = self.rng.random() >= self.backpressure
            dut.link_tx__ready.value = ready
            await ReadOnly()
            if self._holding is not None and dut.link_rx__ready.value:
                self._holding = None
            if ready and dut.link_tx__valid.value:
                word = int(dut.link_tx__payload.value)
                self.session.feed(word.to_bytes(lb, "little"))
                self._reply_event.set()

    async def reply(self, timeout_us=2000):
        """The next non-CREDIT frame from the device."""
        while (frame := self.session.reply()) is None:
            self._reply_event.clear()
            await with_timeout(self._reply_event.wait(), timeout_us, "us")
        return frame

    async def expect(self, op, *, shape=None, tag=None):
        return Session.check(await self.reply(), op, shape=shape, tag=tag)

    def next_tag(self):
        """The tag for the next command (the session's sequence: 1..255, in turn)."""
        return self.session.next_tag()

    # --- host operations -------------------------------------------------------------------

    async def identify(self):
        while self.session.unsent or self._holding is not None:
            await FallingEdge(self.dut.clk)
        tag = self.session.identify()
        frame = await self.expect(Op.IDENTIFY, tag=tag)
        self.config = frame.config
        self.line_errors = line_errors(frame.info)
        if self.config.link_bytes != self.link_bytes:
            raise AssertionError(f"IDENTIFY says link_bytes={self.config.link_bytes}, "
                                 f"build has {self.link_bytes}")
        return self.config

    async def load_a(self, a):
        tag = self.next_tag()
        self.send(load_a_command(a, self.config, tag=tag))
        await self.expect(Op.LOAD_A, shape=a.shape, tag=tag)

    async def gemm(self, w, n):
        """Run a GEMM on the loaded activations; returns (int64 result, device cycles)."""
        cfg = self.config
        k, m = w.shape
        tag = self.next_tag()
        self.send(gemm_command(w, n, cfg, tag=tag))
        return await self.gemm_replies(n, k, m, tag)

    async def gemm_replies(self, n, k, m, tag):
        """The replies to the GEMM sent with ``tag`` (its RESULTs, then the GEMM reply):
        (int64 result, device cycles); an error reply raises `DeviceError`."""
        result = self.session.gemm_result(n, m, tag)
        while not result.add(await self.reply(timeout_us=20 * (n * k * m) + 5000)):
            pass
        return result.out, result.cycles

    async def load_a_blocks(self, xq, xd):
        """LOAD_A of activations in 32-blocks with their binary16 scales."""
        tag = self.next_tag()
        self.send(load_a_blocks_command(xq, xd, self.config, tag=tag))
        await self.expect(Op.LOAD_A, shape=xq.shape, tag=tag)

    async def gemm_blocks(self, raw, fmt, n):
        """GEMM of GGUF block weights; returns (binary32 bit patterns as uint32, device cycles)."""
        cfg = self.config
        m = raw.shape[0]
        k = raw.shape[1] // fmt.block_bytes * 32
        tag = self.next_tag()
        self.send(gemm_blocks_command(raw, fmt, n, cfg, tag=tag))
        out, cycles = await self.gemm_replies(n, k, m, tag)
        return out.astype(np.uint32), cycles
