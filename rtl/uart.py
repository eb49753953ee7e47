"""A UART (8 data bits, no parity, 1 stop bit) of our own: the link of a real board.

The bit period is ``divisor`` clock cycles, ``divisor = round(clk_freq / baudrate)``; the actual
rate ``clk_freq / divisor`` must be within `MAX_BAUD_ERROR` of the requested one (a receiver
samples mid-bit, so 10 bits of accumulated error must stay well under half a bit).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from .control import LineErrorsSignature

__all__ = ["MAX_BAUD_ERROR", "UARTReceiver", "UARTTransmitter", "baud_divisor"]

MAX_BAUD_ERROR = 0.02


def baud_divisor(clk_freq, baudrate):
    """Clock cycles per bit for ``baudrate`` at ``clk_freq``, and the relative rate error."""
    if not baudrate > 0:
        raise ValueError(f"baudrate must be positive, not {baudrate!r}")
    divisor = round(clk_freq / baudrate)
    if divisor < 4:
        raise ValueError(f"a {clk_freq / 1e6:g} MHz clock is too slow for {baudrate} baud "
                         f"(needs at least 4 cycles per bit, has {clk_freq / baudrate:.2f})")
    error = abs(clk_freq / divisor - baudrate) / baudrate
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"{baudrate} baud from {clk_freq / 1e6:g} MHz: divisor {divisor} gives "
                         f"{error:.1%} error (more than {MAX_BAUD_ERROR:.0%})")
    return divisor, error


def _check_divisor(divisor):
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"divisor must be an integer of at least 4, not {divisor!r}")
    return divisor


class UARTReceiver(wiring.Component):
    """Receives 8N1 bytes from ``rx`` (the pin) into the ``data`` stream.

    A byte whose stop bit is low is dropped and pulses ``framing_error``; the receiver then waits
    for the line to go idle (high) before it looks for the next start bit. A byte that arrives
    while the previous one has not been taken is dropped and pulses ``overrun`` (the protocol's
    credit rule keeps a well-behaved host from causing this). ``errors`` counts both
    (`LineErrorsSignature`, saturating), for IDENTIFY to report.
    """

    rx: In(1, init=1)
    data: Out(stream.Signature(8))
    framing_error: Out(1)
    overrun: Out(1)
    errors: Out(LineErrorsSignature())

    def __init__(self, divisor):
        self._divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(div))
        bit = Signal(range(9))
        shreg = Signal(8)
        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):               # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(div - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq((shreg >> 1) | (rx << 7)), timer.eq(div - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    with m.If(self.data.valid & ~self.data.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.data.payload.eq(shreg), self.data.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += self.framing_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"

        for count, event in ((self.errors.framing, self.framing_error),
                             (self.errors.overruns, self.overrun)):
            with m.If(event & (count != 2 ** len(count) - 1)):
                m.d.sync += count.eq(count + 1)
        return m


class UARTTransmitter(wiring.Component):
    """Sends the ``data`` stream as 8N1 on ``tx`` (the pin)."""

    data: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor):
        self._divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        timer = Signal(range(div))
        bits = Signal(range(11))
        shreg = Signal(10, init=0x3FF)
        m.d.comb += [self.tx.eq(shreg[0]), self.data.ready.eq(bits == 0)]
        with m.If(self.data.valid & self.data.ready):
            # start bit (0), 8 data bits LSB first, stop bit (1)
            m.d.sync += [shreg.eq((self.data.payload << 1) | (1 << 9)), bits.eq(10),
                         timer.eq(div - 1)]
        with m.Elif(bits != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [shreg.eq((shreg >> 1) | (1 << 9)), bits.eq(bits - 1),
                             timer.eq(div - 1)]
        return m
