"""The fuzzer's host side (tests/cocotb_fuzz.py): a `Session` that also takes the IDENTIFY
replies to headers inside a burst, and measures how long the host waited for credit."""

from systolica.config import Config
from systolica.host.credit import CreditWindow
from systolica.host.session import Session

__all__ = ["FuzzSession", "TaggedCredit"]


class TaggedCredit(CreditWindow):
    """The credit window, re-based by every IDENTIFY reply from where that IDENTIFY's header was
    sent (an IDENTIFY inside a burst is answered too; `Session.identify` assumes the last one
    sent is the one answered)."""

    def __init__(self):
        super().__init__()
        self.identify_at = {}      # tag -> bytes sent before that IDENTIFY's header

    def on_identify(self, frame, config):
        at = self.identify_at.pop(frame.tag, None)
        if at is not None:
            self._sent_before_identify = at
        super().on_identify(frame, config)


class FuzzSession(Session):
    """`Session` for the fuzzer. Differences: an IDENTIFY payload that describes no
    configuration is left to the fuzzer's judge; IDENTIFY replies inside bursts re-base the
    credit (`TaggedCredit`); the longest time the host had bytes to send and no credit for them
    while the device had none buffered (its idle abort may count such cycles) is measured."""

    def __init__(self):
        super().__init__()
        self.credit = TaggedCredit()
        self.clock = None           # () -> the current cycle
        self.device_empty = bool    # () -> the device's receive buffer is empty
        self.max_stall = 0
        self._stalled_since = None

    @staticmethod
    def _identify_config(payload):
        try:
            return Config.from_identify(payload)
        except (ValueError, TypeError):
            return None                  # judged by the fuzzer

    def take(self, limit=None, *, unit=1):
        chunk = super().take(limit, unit=unit)
        now = self.clock() if self.clock else 0
        if self.unsent and not chunk and self.device_empty():
            if self._stalled_since is None:
                self._stalled_since = now
        elif self._stalled_since is not None:
            self.max_stall = max(self.max_stall, now - self._stalled_since)
            self._stalled_since = None
        return chunk
