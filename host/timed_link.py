"""A `Link` that forwards to another and counts the seconds spent in each call: the time the host
is blocked on the link (writing into a full pipe or UART, waiting for the device's replies)."""

import time

from .link import LinkWrapper

__all__ = ["TimedLink"]


class TimedLink(LinkWrapper):
    """Wraps ``link``; ``seconds[call]`` adds up the wall time of its ``write``, ``read_some``
    and ``poll`` calls and ``calls[call]`` counts them. Anything else (``stats``, ``pid``,
    ``kill``, ...) is the wrapped link's.

    Parameters
    ----------
    link : Link
    """

    CALLS = ("write", "read_some", "poll")

    def __init__(self, link):
        super().__init__(link)
        self.seconds = dict.fromkeys(self.CALLS, 0.0)
        self.calls = dict.fromkeys(self.CALLS, 0)

    @property
    def total_seconds(self):
        """Seconds spent in the link so far, all calls together."""
        return sum(self.seconds.values())

    def _timed(self, call, *args):
        started = time.perf_counter()
        try:
            return getattr(self.link, call)(*args)
        finally:
            self.seconds[call] += time.perf_counter() - started
            self.calls[call] += 1

    def write(self, data):
        return self._timed("write", data)

    def read_some(self, timeout, want=1):
        return self._timed("read_some", timeout, want)

    def poll(self):
        return self._timed("poll")
