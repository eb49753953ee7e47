"""``--port auto``: a board's USB-UART found among faked serial ports by USB id and interface;
none or several give a message that lists what was seen; one found is used end to end."""

import types

import pytest

from systolica import cli
from systolica.boards.catalog import BOARDS
from systolica.config import Config
from systolica.host.ports import PortNotFound, find_board_port
from systolica.sim.pty_board import PtyBoard


def port(device, vid=None, pid=None, location=None, description="n/a"):
    return types.SimpleNamespace(device=device, vid=vid, pid=pid, location=location,
                                 description=description)


JTAG = port("/dev/ttyUSB0", 0x0403, 0x6010, "1-1.2:1.0", "Dual RS232-HS")
UART_B = port("/dev/ttyUSB1", 0x0403, 0x6010, "1-1.2:1.1", "Dual RS232-HS")
FT231X = port("/dev/ttyUSB2", 0x0403, 0x6015, "1-1.3:1.0", "FT231X USB UART")
OTHER = port("/dev/ttyACM0", 0x2341, 0x0043, "1-1.5:1.0", "Arduino Uno")
LEGACY = port("/dev/ttyS0")


@pytest.mark.parametrize(("ports", "device", "boards"), [
    ([JTAG, UART_B, LEGACY], "/dev/ttyUSB1", {"icebreaker", "ecpix5-85f", "ecpix5-85f-dram",
                                              "tang-nano-9k"}),
    ([FT231X, OTHER], "/dev/ttyUSB2", {"ulx3s-85f", "ulx3s-85f-gguf", "ulx3s-25f"}),
])
def test_one_board_uart_is_found(ports, device, boards):
    found, names = find_board_port(BOARDS, ports)
    assert found == device and set(names) == boards


@pytest.mark.parametrize(("ports", "match"), [
    ([], r"ports seen: none"),
    ([JTAG, OTHER, LEGACY], r"no serial port looks like.*0403:6010, 0403:6015.*ports seen: "
                            r"/dev/ttyACM0 \(2341:0043, interface 0, Arduino Uno\); /dev/ttyS0 "
                            r"\(no USB id, n/a\); /dev/ttyUSB0 \(0403:6010, interface 0"),
    ([UART_B, FT231X], r"2 serial ports look like a board's USB-UART: /dev/ttyUSB1 .* could be "
                       r"icebreaker, ecpix5-85f, ecpix5-85f-dram, tang-nano-9k; /dev/ttyUSB2 .* "
                       r"could be ulx3s-85f.*Choose one with --port PATH"),
])
def test_none_or_several_say_what_was_seen(ports, match):
    with pytest.raises(PortNotFound, match=match):
        find_board_port(BOARDS, ports)


def test_port_auto_on_the_command_line(monkeypatch, capsys):
    from serial.tools import list_ports

    monkeypatch.setattr(list_ports, "comports", lambda: [OTHER])
    assert cli.main(["identify", "--port", "auto"]) == 2
    assert "--port auto: no serial port looks like a board's USB-UART" in capsys.readouterr().err
    # A simulated board behind a pty, listed with a ULX3S's USB id: found and asked.
    with PtyBoard(Config()) as board:
        monkeypatch.setattr(list_ports, "comports", lambda: [
            OTHER, port(board.port, 0x0403, 0x6015, "1-1.3:1.0", "FT231X USB UART")])
        assert cli.main(["identify", "--port", "auto"]) == 0
    out, err = capsys.readouterr()
    assert f"--port auto: {board.port} (the USB-UART of ulx3s-85f" in err
    assert "rows: 2" in out and "cols: 16" in out
