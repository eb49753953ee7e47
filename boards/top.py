"""The design a board runs: PLL clock, UART, and the same `Accelerator` the simulated board runs,
at this board's configuration (1-byte link)."""

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io
from amaranth.lib.wiring import connect

from systolica.rtl.top import Accelerator
from systolica.rtl.uart import UARTReceiver, UARTTransmitter, baud_divisor

from .pll import add_sync_domain, pll_for

__all__ = ["BoardTop", "uart_pins_and_leds"]


class BoardTop(Elaboratable):
    """LEDs: the first blinks at about 1 Hz (the clock runs), the second lights while received
    bytes wait in the device, the third (if the board has one) latches a UART framing error or
    overrun; IDENTIFY reports how many of each (`LineErrorsSignature`)."""

    def __init__(self, board):
        self.board = board
        self.config = board.config
        self.pll = None
        self.divisor, self.baud_error = None, None

    def elaborate(self, platform):
        board = self.board
        m = Module()
        clk_resource = platform.resources[platform.default_clk, 0]
        f_in = clk_resource.clock.frequency
        self.pll = pll = pll_for(board.family, f_in, board.clk_freq)
        clk_port = platform.request(platform.default_clk, dir="-")
        add_sync_domain(m, platform, pll, clk_port)
        self.divisor, self.baud_error = baud_divisor(pll.f_out, board.baudrate)

        m.submodules.accel = accel = Accelerator(self.config)
        m.submodules.uart_rx = uart_rx = UARTReceiver(self.divisor)
        m.submodules.uart_tx = uart_tx = UARTTransmitter(self.divisor)
        connect(m, uart_rx.data, accel.link_rx)
        connect(m, accel.link_tx, uart_tx.data)
        connect(m, uart_rx.errors, accel.line_errors)

        uart_pins_and_leds(m, platform, board, pll.f_out, uart_rx, uart_tx, accel.rx_empty)
        return m


def uart_pins_and_leds(m, platform, board, f_out, uart_rx, uart_tx, rx_empty):
    """The board's UART pins on ``uart_rx``/``uart_tx``, and its LEDs: a heartbeat of about
    1 Hz at ``f_out``, ``~rx_empty`` (received bytes wait in the device), and a latched UART
    framing error or overrun (as many as the board has)."""
    uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
    m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
    m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
    m.d.comb += [uart_rx.rx.eq(rx_buf.i), tx_buf.o.eq(uart_tx.tx)]

    heartbeat = Signal(range(int(f_out)))
    blink = Signal()
    with m.If(heartbeat == int(f_out // 2) - 1):
        m.d.sync += [heartbeat.eq(0), blink.eq(~blink)]
    with m.Else():
        m.d.sync += heartbeat.eq(heartbeat + 1)
    framing = Signal()
    with m.If(uart_rx.framing_error | uart_rx.overrun):
        m.d.sync += framing.eq(1)
    for i, (spec, value) in enumerate(zip(board.leds, (blink, ~rx_empty, framing),
                                          strict=False)):
        name, number, *sub = spec
        led = platform.request(name, number, dir="-")
        if sub:          # one colour of an RGB LED
            led = getattr(led, sub[0])
        m.submodules[f"led{i}"] = buf = io.Buffer("o", led)
        m.d.comb += buf.o.eq(value)
