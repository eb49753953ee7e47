"""A link wrapper for tests that keeps what crossed it, and the RESULT frames among the replies."""

from systolica.host.frame_reader import FrameReader
from systolica.host.link import LinkWrapper
from systolica.protocol import Op


class Recorder(LinkWrapper):
    """Keeps every byte the host writes (``sent``) and reads (``received``)."""

    def __init__(self, link):
        super().__init__(link)
        self.sent = bytearray()
        self.received = bytearray()

    def write(self, data):
        self.sent += data
        self.link.write(data)

    def read_some(self, timeout, want=1):
        data = self.link.read_some(timeout, want)
        self.received += data
        return data


def result_frames(data, config):
    """(i, j, rows, cols) of each RESULT frame among the device's replies in ``data``."""
    reader = FrameReader(config.link_bytes, config)
    reader.feed(bytes(data))
    return [(f.args[0], f.args[1], f.args[2] & 0xFFFF, f.args[2] >> 16)
            for f in reader.frames() if f.op == Op.RESULT]
