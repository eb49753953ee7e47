"""One conversation with a device over a `Link`: frames sent under the credit rule with replies
taken meanwhile, replies checked, IDENTIFY, and each exchange tried again after a damaged one,
the conversation resynchronized first. `Driver` holds the commands that use it."""

import time

from systolica.protocol import Op, Status, line_errors

from .driver_dram import StoredWeightsCorrupt
from .driver_stats import DriverStats
from .frame_fill import drain, fill_cut_frame
from .frames import DeviceError, ProtocolError
from .link import LinkError, LinkTimeout
from .session import Session

__all__ = ["RETRIED_STATUSES", "Conversation", "RetriesExhausted"]

# Error replies a retry can cure: the exchange was damaged or cut off on the way, not wrong.
# NOT_LOADED: the device no longer holds the activations the driver loaded before (reset, or a
# LOAD_A cut off); the retry loads them again.
RETRIED_STATUSES = (Status.BAD_CRC, Status.ABORTED, Status.NOT_LOADED)


class RetriesExhausted(LinkError):
    """A command failed every try; the message says what was sent and what came back."""


class Conversation:
    """The exchanges with one device over ``link`` (the `Driver`'s parameters of the same
    names): `identify`, `resync`, and for the commands ``_send``, ``_expect`` and
    ``_retrying``. Closing it closes the link; it is a context manager."""

    def __init__(self, link, *, timeout, progress, retries, resync_quiet):
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, not {retries!r}")
        self.link = link
        self.timeout = timeout
        self.retries = retries
        self.resync_quiet = resync_quiet
        self.progress = progress
        self.stats = DriverStats()
        self.session = Session()
        self._in_doubt = False      # an exchange failed and no resync has succeeded since
        self._loaded = None         # the LOAD_A (but its tag) whose A the device holds, if known
        self._longest_frame = 0     # bytes of the longest frame sent (`frame_fill`)
        self.config = None

    # --- the wire --------------------------------------------------------------------------

    def _receive(self, timeout):
        try:
            data = (self.link.read_some(timeout, self.session.missing()) if timeout > 0
                    else self.link.poll())
        except LinkTimeout:
            raise LinkTimeout(f"{self.link.name}: the device stopped answering "
                              f"({self.timeout:g} s without a byte){self._discarded()}") from None
        self.stats.bytes_in += len(data)
        self.session.feed(data)

    def _discarded(self):
        """What the frame reader dropped as not a valid reply, for error messages."""
        reader = self.session.reader
        if not reader.discarded:
            return ""
        return (f"; {reader.discarded} received bytes were not a valid reply (last: "
                f"{reader.problems[-1]})")

    def _send(self, data, *, kind=None):
        """Send ``data`` without exceeding the device's credit, taking replies meanwhile."""
        self._longest_frame = max(self._longest_frame, len(data))
        self.session.send(data)
        self._flush(kind)

    def _flush(self, kind=None):
        session = self.session
        while session.unsent:
            chunk = session.take(1 << 16)
            if chunk:
                self.link.write(chunk)
                self.stats.bytes_out += len(chunk)
                if kind == "weights":
                    self.stats.weight_bytes_out += len(chunk)
                elif kind == "act":
                    self.stats.act_bytes_out += len(chunk)
                elif kind == "dram":
                    self.stats.dram_bytes_out += len(chunk)
                if self.progress:
                    self.progress(len(chunk))
                self._receive(0)
            else:
                self._receive(self.timeout)

    def _next_reply(self, tag=None):
        """The next reply; with ``tag``, replies to earlier commands are dropped (and counted):
        after a resync, the answers to what was sent before it may still be on their way."""
        deadline = time.monotonic() + self.timeout
        stale = []
        while True:
            while (frame := self.session.reply()) is None:
                if time.monotonic() > deadline:
                    late = (f"; dropped {len(stale)} replies to earlier commands (tags "
                            f"{sorted(set(stale))})" if stale else "")
                    raise LinkTimeout(f"{self.link.name}: no reply in {self.timeout:g} s"
                                      f"{late}{self._discarded()}")
                self._receive(self.timeout)
            if tag is None or not Session.is_earlier(frame.tag, tag):
                return frame
            stale.append(frame.tag)
            self.stats.stale_replies += 1

    def _expect(self, op, *, shape=None, tag=None):
        return Session.check(self._next_reply(tag), op, shape=shape, tag=tag)

    # --- commands --------------------------------------------------------------------------

    def identify(self):
        """Ask the device for its configuration (works before the link width is known)."""
        self._loaded = None         # a new conversation: what the device holds is not known
        tag = self.session.identify()
        self._flush()
        reply = self._expect(Op.IDENTIFY, tag=tag)
        self.config = reply.config
        self.stats.line_framing_errors, self.stats.line_overruns = line_errors(reply.info)
        return self.config

    def resync(self, quiet=0.5):
        """Start the conversation over after something went wrong (a reply lost or damaged,
        a timeout): drop whatever the device is still sending until it has been quiet for
        ``quiet`` seconds, forget the replies and the partial frame in hand, and IDENTIFY
        again, which restarts the credit window from the device's own count. ``quiet`` must be
        longer than the device's idle abort (`Config.abort_cycles`; a quarter of a second on the
        catalog boards), so that a command cut off mid-payload has been dropped by then (with
        its ``ABORTED`` reply, drained here) and the IDENTIFY is not taken for its rest. Tags go
        on from the old session's, so a late reply to one of its commands does not pass for a
        reply to a new one. A device without an idle abort (``abort_cycles`` = 0) is sent as many
        zero bytes as the longest frame sent first, which completes a frame cut off on the way
        (`frame_fill`; a FIFO's worth at a time, each followed by ``quiet / 10`` s of silence),
        then waits for ``quiet`` s of silence again."""
        dropped = (self.session.reader.buffered + self.session.reader.discarded
                   + drain(self.link, quiet))
        if self.config is not None and not self.config.abort_cycles:
            sent, more = fill_cut_frame(self.link, self.config, self._longest_frame,
                                        quiet / 10)
            self.stats.bytes_out += sent
            self.stats.fill_bytes_out += sent
            dropped += more + drain(self.link, quiet)
        self.session = Session(last_tag=self.session.last_tag)
        self.stats.resyncs += 1
        self.stats.discarded_in += dropped
        return self.identify()

    def _retrying(self, what, run):
        """``run(retry)``, tried up to ``1 + retries`` times: after an error reply a retry can
        cure (`RETRIED_STATUSES`), a damaged or unexpected reply or a timeout, the conversation
        is resynchronized and ``run(True)`` goes again. Then `RetriesExhausted`, and the next
        command starts with a resync (the last one may have failed too)."""
        failures = []
        for attempt in range(self.retries + 1):
            try:
                if attempt or self._in_doubt:
                    self.stats.retries += bool(attempt)
                    self.resync(self.resync_quiet)
                    self._in_doubt = False
                return run(bool(attempt))
            except (DeviceError, ProtocolError, LinkTimeout) as exc:
                if isinstance(exc, StoredWeightsCorrupt) or (
                        isinstance(exc, DeviceError) and exc.status not in RETRIED_STATUSES):
                    raise
                if isinstance(exc, LinkTimeout) and not self.stats.bytes_in:
                    raise       # silent from the start: no device there, not a noisy line
                # Until a resync succeeds, the next exchange (of this command, or of the next
                # one if this was the last try) starts with one.
                self._in_doubt = True
                failures.append(f"try {attempt + 1}: {type(exc).__name__}: {exc}")
                last = exc
        st = self.stats
        line = (f"; the device's line had {st.line_framing_errors} framing errors and "
                f"{st.line_overruns} overruns at its last IDENTIFY"
                if st.line_framing_errors or st.line_overruns else "")
        raise RetriesExhausted(f"{self.link.name}: {what} failed {len(failures)} times; "
                               + "; ".join(failures) + line) from last

    def close(self):
        self.link.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
