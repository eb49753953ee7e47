"""The host's side of the protocol's credit rule: never more unacknowledged bytes in flight than
the device's receive buffer (most boards' UARTs have no RTS/CTS, so nothing else stops an overrun).
"""

from systolica.protocol import HEADER_BYTES, IDENTIFY_PAD

from .frames import ProtocolError

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
        self._sent_before_identify = 0

    @property
    def in_flight(self):
        return self.sent - self.acked

    def room(self):
        """Bytes that may be sent now."""
        return max(self.limit - self.in_flight, 0)

    def on_sent(self, n):
        self.sent += n
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def before_identify(self):
        """Call right before sending IDENTIFY."""
        self._sent_before_identify = self.sent

    def on_identify(self, frame, config):
        """Set the window from an IDENTIFY reply, in stream order (before any later CREDIT)."""
        # The device's count (arg2) was taken right after it consumed our IDENTIFY header: 32
        # bytes, a whole number of words on every link (`MAX_LINK_BYTES`).
        acked = self._sent_before_identify + HEADER_BYTES
        self._offset = frame.args[2] - acked
        self.acked = max(self.acked, acked)
        self.limit = config.rx_bytes

    def on_credit(self, count):
        """A CREDIT frame: the device has consumed ``count`` bytes (mod 2**32) in all."""
        if self._offset is None:
            return
        delta = (count - self._offset - self.acked) & 0xFFFFFFFF
        if self.acked + delta > self.sent:
            # A byte duplicated on the line does this: a damaged exchange, tried again.
            raise ProtocolError(f"device acknowledged {self.acked + delta} bytes, host sent "
                                f"only {self.sent}")
        self.acked += delta
