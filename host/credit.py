"""The host's side of the protocol's credit rule: never more unacknowledged bytes in flight than
the device's receive buffer (most boards' UARTs have no RTS/CTS, so nothing else stops an overrun).
"""

from systolica.rtl.protocol import HEADER_BYTES, IDENTIFY_PAD

__all__ = ["CreditWindow"]


class CreditWindow:
    """Counts bytes sent and bytes the device says it has consumed.

    Until IDENTIFY has been answered the window is `IDENTIFY_PAD` bytes (every device has at least
    that much buffer) and CREDIT frames are ignored, since their base is not known yet.
    """

    def __init__(self):
        self.limit = IDENTIFY_PAD
        self.sent = 0
        self.acked = 0
        self.max_in_flight = 0
        self._offset = None

    @property
    def in_flight(self):
        return self.sent - self.acked

    def room(self):
        """Bytes that may be sent now."""
        return max(self.limit - self.in_flight, 0)

    def on_sent(self, n):
        self.sent += n
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def on_identify(self, frame, sent_before, config):
        """Set the window from an IDENTIFY reply; ``sent_before`` = bytes sent before IDENTIFY."""
        header_bytes = -(-HEADER_BYTES // config.link_bytes) * config.link_bytes
        # The device's count (arg2) was taken right after it consumed our IDENTIFY header.
        self._offset = frame.args[2] - (sent_before + header_bytes)
        self.acked = max(self.acked, sent_before + header_bytes)
        self.limit = config.rx_bytes

    def on_credit(self, count):
        """A CREDIT frame: the device has consumed ``count`` bytes (mod 2**32) in all."""
        if self._offset is None:
            return
        delta = (count - self._offset - self.acked) & 0xFFFFFFFF
        if self.acked + delta > self.sent:
            raise RuntimeError(f"device acknowledged {self.acked + delta} bytes, host sent "
                               f"only {self.sent}")
        self.acked += delta
