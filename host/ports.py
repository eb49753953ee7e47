"""Finding a board's USB-UART among the serial ports (``--port auto``), by USB vendor and
product id and, for dual-channel chips, the interface the UART is on."""

__all__ = ["PortNotFound", "find_board_port", "port_interface"]


class PortNotFound(RuntimeError):
    """No port, or more than one, looks like a catalog board's USB-UART."""


def port_interface(port):
    """The USB interface number of a pyserial port (``location`` "1-1.4:1.1" → 1), or None."""
    location = getattr(port, "location", None) or ""
    if ":" not in location:
        return None
    try:
        return int(location.rsplit(".", 1)[-1])
    except ValueError:
        return None


def _describe(port):
    ids = f"{port.vid:04x}:{port.pid:04x}" if port.vid is not None else "no USB id"
    interface = port_interface(port)
    where = f", interface {interface}" if interface is not None else ""
    return f"{port.device} ({ids}{where}, {port.description})"


def find_board_port(boards, ports=None):
    """(device path, names of the boards it could be) of the one serial port whose USB id (and
    interface) is some board's USB-UART in ``boards`` (name → `Board`). ``ports`` defaults to
    pyserial's `list_ports.comports()`. Raises `PortNotFound` saying which ports were seen."""
    if ports is None:
        from serial.tools import list_ports

        ports = list_ports.comports()
    ports = sorted(ports, key=lambda p: p.device)
    matches = []
    for port in ports:
        names = [name for name, board in boards.items() if board.usb_uart and
                 (port.vid, port.pid) == board.usb_uart[:2] and
                 board.usb_uart[2] in (None, port_interface(port))]
        if names:
            matches.append((port, names))
    if len(matches) == 1:
        port, names = matches[0]
        return port.device, names
    seen = "; ".join(_describe(p) for p in ports) or "none"
    if not matches:
        wanted = sorted({f"{b.usb_uart[0]:04x}:{b.usb_uart[1]:04x}" for b in boards.values()
                         if b.usb_uart})
        raise PortNotFound(f"no serial port looks like a board's USB-UART (USB ids "
                           f"{', '.join(wanted)}); ports seen: {seen}. Check the USB cable "
                           "and that the board is powered, or name the port with --port PATH")
    raise PortNotFound(f"{len(matches)} serial ports look like a board's USB-UART: "
                       + "; ".join(f"{_describe(p)} could be {', '.join(n)}" for p, n in matches)
                       + ". Choose one with --port PATH")
