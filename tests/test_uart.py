"""The UART in Amaranth's simulator at a real board divisor: round trip, framing errors, glitches,
baud-rate arithmetic."""

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from systolica.rtl.uart import UARTReceiver, UARTTransmitter, baud_divisor


def serialize(byte, divisor, stop=1):
    """Line levels, one per clock cycle, for one 8N1 frame (``stop=0`` makes a framing error)."""
    bits = [0] + [(byte >> i) & 1 for i in range(8)] + [stop]
    return [b for b in bits for _ in range(divisor)]


def run_receiver(levels, divisor):
    dut = UARTReceiver(divisor)
    got, errors = [], []

    async def drive(ctx):
        for level in levels:
            ctx.set(dut.rx, level)
            await ctx.tick()
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(4 * divisor)

    async def watch(ctx):
        ctx.set(dut.data.ready, 1)
        async for _, _, valid, payload, framing in ctx.tick().sample(
                dut.data.valid, dut.data.payload, dut.framing_error):
            if valid:
                got.append(payload)
            if framing:
                errors.append(len(got))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_testbench(watch, background=True)
    sim.run()
    return got, errors


@pytest.mark.parametrize("divisor", [16, 10, 13])   # 3 Mbaud at 48, 30 MHz; an odd one
def test_receiver_takes_bytes_and_drops_framing_errors(divisor):
    idle = [1] * (3 * divisor)
    levels = list(idle)
    for byte in (0x00, 0xFF, 0xA5):
        levels += serialize(byte, divisor) + idle
    levels += serialize(0x5A, divisor, stop=0) + [0] * divisor + idle   # framing error, break
    levels += [0] * (divisor // 4) + idle                                # a glitch, no start bit
    levels += serialize(0x3C, divisor) + idle
    got, errors = run_receiver(levels, divisor)
    assert got == [0x00, 0xFF, 0xA5, 0x3C]
    assert errors == [3]


def line_counts(levels, divisor, *, ready):
    """The receiver's error counts (framing, overruns) after ``levels``, its ``data`` stream
    always (``ready``) or never taken."""
    dut = UARTReceiver(divisor)
    counts = []

    async def drive(ctx):
        ctx.set(dut.data.ready, ready)
        for level in levels:
            ctx.set(dut.rx, level)
            await ctx.tick()
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(4 * divisor)
        counts.extend((ctx.get(dut.errors.framing), ctx.get(dut.errors.overruns)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.run()
    return tuple(counts)


# (good bytes, bytes with a low stop bit, data taken?) → the counts IDENTIFY reports: a byte
# that finds the last one untaken is an overrun; both counts stop at 255.
LINE_CASES = {
    "clean": (5, 0, True, (0, 0)),
    "framing": (2, 3, True, (3, 0)),
    "overruns": (5, 0, False, (0, 4)),
    "both": (3, 2, False, (2, 2)),
    "saturates": (0, 300, True, (255, 0)),
}


@pytest.mark.parametrize("name", list(LINE_CASES))
def test_receiver_counts_line_errors(name):
    good, bad, ready, want = LINE_CASES[name]
    divisor = 4
    idle = [1] * (2 * divisor)
    levels = list(idle)
    for i in range(good):
        levels += serialize(0x40 + i, divisor) + idle
    for i in range(bad):
        levels += serialize(0x80 + i % 64, divisor, stop=0) + [0] * divisor + idle
    assert line_counts(levels, divisor, ready=ready) == want


def test_transmitter_to_receiver_round_trip():
    divisor = 16
    payload = [0x00, 0x01, 0x80, 0xFF, 0xA5, 0x5A, 0x37]
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor)
    m.submodules.rx = rx = UARTReceiver(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    got = []

    async def send(ctx):
        for byte in payload:
            ctx.set(tx.data.payload, byte)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
        ctx.set(tx.data.valid, 0)
        await ctx.tick().repeat(12 * divisor)

    async def receive(ctx):
        ctx.set(rx.data.ready, 1)
        async for _, _, valid, data in ctx.tick().sample(rx.data.valid, rx.data.payload):
            if valid:
                got.append(data)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(send)
    sim.add_testbench(receive, background=True)
    sim.run()
    assert got == payload


@pytest.mark.parametrize(("clk", "baud", "divisor"), [
    (48e6, 3_000_000, 16), (30e6, 3_000_000, 10), (25e6, 115200, 217), (36e6, 3_000_000, 12),
])
def test_baud_divisor(clk, baud, divisor):
    got, error = baud_divisor(clk, baud)
    assert got == divisor and error < 0.02


@pytest.mark.parametrize(("clk", "baud", "match"), [
    (10e6, 3_000_000, "too slow"), (25e6, 3_000_000, "error"), (48e6, 0, "positive"),
])
def test_baud_divisor_rejects_bad_rates(clk, baud, match):
    with pytest.raises(ValueError, match=match):
        baud_divisor(clk, baud)
