"""Completing a cut-off frame from the host, for a device without an idle abort.

A device built with ``abort_cycles`` = 0 (a part too full for the idle abort, such as the
iCEBreaker) that lost bytes of a LOAD_A or GEMM on the way keeps waiting for the rest of that
payload, and would take the next command's bytes as part of it. A resync therefore first sends
what the device may still be waiting for: as many zero bytes (zero never starts a header) as the
longest frame sent, after which no frame can still be incomplete. They go a receive FIFO's worth
at a time, each followed by a drain until the line is quiet, so that a cut command which
completes and starts computing (its payload fails the CRC check; its results and error reply are
dropped) does not make the FIFO overflow; the rest of the zeros are taken as bytes between
frames. A new process does not know how long a frame cut off by an earlier one was: on such a
device a host killed mid-frame leaves it waiting until the board is reset.
"""

from .link import LinkTimeout

__all__ = ["drain", "fill_cut_frame"]


def drain(link, quiet):
    """Read and drop whatever ``link`` delivers until it has been silent for ``quiet`` seconds;
    returns the number of bytes dropped."""
    dropped = 0
    while True:
        try:
            dropped += len(link.read_some(quiet))
        except LinkTimeout:
            return dropped


def fill_cut_frame(link, config, longest, pause):
    """Send ``longest`` zero bytes (rounded up to whole link words), a receive FIFO's worth at a
    time, draining the link until it has been quiet for ``pause`` seconds after each. Call it with
    the link drained, so that the device's receive FIFO is empty. Returns ``(sent, dropped)``:
    zero bytes sent and received bytes dropped."""
    word = config.link_bytes
    total = -(-longest // word) * word
    sent = dropped = 0
    while sent < total:
        size = min(config.rx_bytes, total - sent)
        link.write(bytes(size))
        sent += size
        dropped += drain(link, pause)
    return sent, dropped
