"""The header parser's DRAM commands (devices with DRAM; see `protocol`): WRITE_DRAM's and
GEMM_DRAM's requests to the DRAM engines, and what follows their payloads.

WRITE_DRAM: DECIDE checks its range; WRITE_REQ asks the writer for the run of words (once the
DRAM is initialized), and the command goes to the router, which passes the payload to the
writer; STORED waits until the writer has put the last word into the DRAM, then replies.

GEMM_DRAM: GEMM's checks and the stored payload's range; READ_REQ asks the reader for the stored
payload and its CRC word, sets ``from_dram`` (the decoder then feeds the router from the reader,
not from the link) and hands the command on as a GEMM; after the router's ``done``, DRAIN drops
whatever of the run the router did not take (``dram_drain``) and clears ``from_dram``.

DRAM_CHECK: its range; CHECK_REQ asks the reader for the bytes and their CRC word and hands the
command on as WRITE_DRAM's, but from the DRAM (the decoder drops the router's words instead of
writing them); DRAIN then replies with the CRC check's verdict.
"""

from amaranth.hdl import Mux
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from systolica import protocol
from systolica.protocol import Status

from .dram_access import dram_addr_width
from .dram_reader import request_layout

__all__ = ["DramStates", "dram_parser_ports"]


def dram_parser_ports(cfg):
    """The parser's ports for the DRAM commands.

    dram_write, dram_read : streams of `request_layout` to the writer and the reader.
    dram_ready : in; the DRAM is initialized.
    dram_write_busy, dram_read_busy : in; the writer (reader) has words not yet written
        (delivered).
    from_dram : out; the command being routed takes its payload from the reader.
    dram_drain : out; the reader's words left over are to be dropped.
    """
    width = dram_addr_width(cfg)
    request = stream.Signature(request_layout(width, width + 1))
    return {
        "dram_write": Out(request),
        "dram_read": Out(request),
        "dram_ready": In(1),
        "dram_write_busy": In(1),
        "dram_read_busy": In(1),
        "from_dram": Out(1),
        "dram_drain": Out(1),
    }


class DramStates:
    """Adds the DRAM commands' decisions and states to a `HeaderParser`'s FSM.

    Parameters
    ----------
    parser : HeaderParser
        The parser (its ports above).
    verdict : `header_check.DramVerdict`
        The header's DRAM checks.
    hdr : `frame_layouts.Header`
        The header in the window.
    """

    def __init__(self, parser, verdict, hdr):
        self._parser, self._v, self._hdr = parser, verdict, hdr
        lb = parser._config.link_bytes
        self._shift = (protocol.DRAM_WORD_BYTES - 1).bit_length()
        self._crc_words = protocol.words(protocol.crc_word_bytes(lb), protocol.DRAM_WORD_BYTES)

    def decide_gemm(self, m, send_reply):
        """In DECIDE's GEMM checks, before it is accepted: GEMM_DRAM's range."""
        with m.Elif(self._v.is_gemm_dram & ~self._v.read_ok):
            send_reply(m, Status.BAD_LENGTH)

    def gemm_accepted(self, m):
        """An accepted GEMM_DRAM asks for its stored payload before it is handed on."""
        with m.If(self._v.is_gemm_dram):
            m.next = "READ_REQ"

    def decide_commands(self, m, send_reply):
        """In DECIDE, after the GEMM branch: WRITE_DRAM and DRAM_CHECK."""
        for verdict, ok, state in ((self._v.is_write, self._v.write_ok, "WRITE_REQ"),
                                   (self._v.is_check, self._v.check_ok, "CHECK_REQ")):
            with m.Elif(verdict):
                with m.If(~ok):
                    send_reply(m, Status.BAD_LENGTH)
                with m.Else():
                    m.next = state

    def after_route(self, m):
        """In ROUTE, at the router's ``done`` of a command that is not LOAD_A."""
        p = self._parser
        with m.If(self._v.is_write):
            m.next = "STORED"
        with m.If(p.from_dram):
            m.next = "DRAIN"

    def states(self, m, send_reply, hand_on):
        p, hdr, shift = self._parser, self._hdr, self._shift
        with m.State("WRITE_REQ"):
            m.d.comb += [
                p.dram_write.valid.eq(p.dram_ready),
                p.dram_write.payload.addr.eq(hdr.arg0 >> shift),
                p.dram_write.payload.count.eq(hdr.length >> shift),
            ]
            with m.If(p.dram_write.valid & p.dram_write.ready):
                hand_on(m)

        with m.State("STORED"):
            with m.If(~p.dram_write_busy):
                with m.If(p.aborted):
                    send_reply(m, Status.ABORTED, skip=False)
                with m.Elif(p.router.bad_crc):
                    send_reply(m, Status.BAD_CRC, skip=False)
                with m.Else():
                    send_reply(m, Status.OK, skip=False)

        for state, addr, length in (("READ_REQ", hdr.arg3, hdr.info),
                                    ("CHECK_REQ", hdr.arg0, hdr.arg1)):
            with m.State(state):
                m.d.comb += [
                    p.dram_read.valid.eq(p.dram_ready),
                    p.dram_read.payload.addr.eq(addr >> shift),
                    p.dram_read.payload.count.eq((length >> shift) + self._crc_words),
                ]
                with m.If(p.dram_read.valid & p.dram_read.ready):
                    m.d.sync += p.from_dram.eq(1)
                    hand_on(m)

        with m.State("DRAIN"):
            m.d.comb += p.dram_drain.eq(1)
            with m.If(~p.dram_read_busy):
                m.d.sync += p.from_dram.eq(0)
                m.next = "HEADER"
                with m.If(self._v.is_check):
                    send_reply(m, Mux(p.router.bad_crc, Status.BAD_CRC, Status.OK), skip=False)
