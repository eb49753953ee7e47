"""Reply framer: turns replies, result rows and credit into frames of link words."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import protocol
from .decoder import Header, Reply
from .engine import ResultRow
from .protocol import Op

__all__ = ["Framer"]


class Framer(wiring.Component):
    """Sends frames on ``tx``, one at a time, in priority order: CREDIT, a decoder reply,
    RESULT frames, the GEMM reply.

    It also counts the GEMM's device cycles: from ``gemm_start`` (the GEMM header accepted) to the
    handshake of the last RESULT word; the count goes into the GEMM reply. ``busy`` is set from
    ``gemm_start`` until that reply has been sent.
    """

    def __init__(self, config):
        self._config = config
        cfg = config
        super().__init__({
            "tx": Out(stream.Signature(8 * cfg.link_bytes)),
            "reply": In(stream.Signature(Reply)),
            "results": In(stream.Signature(ResultRow(cfg))),
            "credit_due": In(1),
            "consumed": In(32),
            "credit_sent": Out(1),
            "gemm_start": In(1),
            "m": In(16),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        lb = cfg.link_bytes
        identify = cfg.identify_payload()
        longest = max(protocol.HEADER_BYTES, len(identify), 4 * cfg.cols)
        shift = Signal(8 * lb * -(-longest // lb))
        words_left = Signal(range(-(-longest // lb) + 1))
        after = Signal(2)        # where SEND goes when done: 0 idle, 1 row, 2 identify
        final_row = Signal()

        cycles = Signal(48)
        counting = Signal()
        done_pending = Signal()
        with m.If(self.gemm_start):
            m.d.sync += [cycles.eq(0), counting.eq(1), self.busy.eq(1)]
        with m.Elif(counting):
            m.d.sync += cycles.eq(cycles + 1)

        def words(nbytes):
            return (nbytes + lb - 1) // lb

        def load_header(op, status=0, arg0=0, arg1=0, arg2=0, then=0):
            hdr = Signal(Header)
            check = Signal(8)
            m.d.comb += [
                hdr.magic.eq(protocol.MAGIC), hdr.op.eq(op), hdr.status.eq(status),
                hdr.arg0.eq(arg0), hdr.arg1.eq(arg1), hdr.arg2.eq(arg2),
                check.eq(-sum(hdr.as_value().word_select(i, 8) for i in range(16) if i != 3)),
                hdr.check.eq(check),
            ]
            m.d.sync += [shift.eq(hdr), words_left.eq(words(16)), after.eq(then)]
            m.next = "SEND"

        res = self.results.payload
        cols_bytes = Signal(range(4 * cfg.cols + 1))
        m.d.comb += cols_bytes.eq(res.cols << 2)
        row_masked = Signal(data.ArrayLayout(data.signed(cfg.acc_width), cfg.cols))
        for c in range(cfg.cols):
            m.d.comb += row_masked[c].eq(Mux(c < res.cols, res.data[c], 0))

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.credit_due):
                    m.d.comb += self.credit_sent.eq(1)
                    load_header(Op.CREDIT | protocol.REPLY, arg0=self.consumed)
                with m.Elif(self.reply.valid):
                    m.d.comb += self.reply.ready.eq(1)
                    rp = self.reply.payload
                    is_identify = (rp.op == (Op.IDENTIFY | protocol.REPLY)) & (rp.status == 0)
                    load_header(rp.op, rp.status, rp.arg0, rp.arg1, rp.arg2,
                                then=Mux(is_identify, 2, 0))
                with m.Elif(self.results.valid):
                    load_header(Op.RESULT | protocol.REPLY, 0, res.row_tile, res.col_tile,
                                Cat(res.rows, Const(0, 16 - len(res.rows)), res.cols), then=1)
                with m.Elif(done_pending):
                    m.d.sync += [done_pending.eq(0), self.busy.eq(0)]
                    load_header(Op.GEMM | protocol.REPLY, 0, cycles[:32], cycles[32:], self.m)

            with m.State("ROW"):
                # One result row: `cols` int32, padded to whole words.
                m.d.comb += self.results.ready.eq(1)
                m.d.sync += [
                    shift.eq(row_masked),
                    words_left.eq((cols_bytes + lb - 1) >> (lb.bit_length() - 1)),
                    after.eq(Mux(res.last, 0, 1)),
                    final_row.eq(res.end),
                ]
                m.next = "SEND"

            with m.State("IDENTIFY"):
                m.d.sync += [
                    shift.eq(int.from_bytes(identify, "little")),
                    words_left.eq(words(len(identify))),
                    after.eq(0),
                ]
                m.next = "SEND"

            with m.State("SEND"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(shift[:8 * lb])]
                with m.If(self.tx.ready):
                    m.d.sync += [shift.eq(shift >> (8 * lb)), words_left.eq(words_left - 1)]
                    with m.If(words_left == 1):
                        with m.If(final_row & (after == 0)):
                            m.d.sync += [final_row.eq(0), counting.eq(0), done_pending.eq(1)]
                        with m.Switch(after):
                            with m.Case(0):
                                m.next = "IDLE"
                            with m.Case(1):
                                m.next = "ROW"
                            with m.Case(2):
                                m.next = "IDENTIFY"
        return m
