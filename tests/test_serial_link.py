"""The serial-port link on pyserial's loopback: what it does on opening."""

import serial

from systolica.host.link import SerialLink


def test_a_serial_link_drops_what_was_waiting_before_it_opened(monkeypatch):
    """Bytes left on the line from before (an earlier session's replies) are not read as the
    answers to this session's first commands."""
    real = serial.serial_for_url

    def prefilled(url, **kwargs):
        port = real("loop://", **kwargs)
        port.write(b"stale reply bytes")
        return port

    monkeypatch.setattr(serial, "serial_for_url", prefilled)
    link = SerialLink("loop://")
    assert link.stale_bytes == len(b"stale reply bytes")
    link.write(b"fresh")
    assert link.read(5, 1.0) == b"fresh"
    link.close()
