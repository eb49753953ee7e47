"""Reply framer: turns replies, result rows and credit into frames of link words."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from systolica import protocol
from systolica.protocol import Op

from .control import CreditSignature, GemmControlSignature
from .drain import ResultRow
from .frame_layouts import Header, Reply

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
            "credit": In(CreditSignature()),
            "control": In(GemmControlSignature(cfg)),
            "busy": Out(1),
            "bad_scale": In(1),    # the GEMM met an inf/NaN block scale: its reply says so
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        lb = cfg.link_bytes
        identify = cfg.identify_payload()

        def words(nbytes):
            return protocol.words(nbytes, lb)

        # What goes out (a header, a result row or the IDENTIFY payload) is loaded into one
        # shift register and leaves from its low word, one word per handshake: the link word
        # comes straight from flip-flops (timing: a word select over a whole row, plus the choice
        # of source, was the ECP5 build's critical path into the transmit FIFO).
        hdr = Signal(Header)
        row_bits = 8 * lb * words(4 * cfg.cols)
        ident_bits = 8 * lb * words(len(identify))
        hdr_bits = 8 * lb * words(16)
        out = Signal(max(row_bits, ident_bits, hdr_bits))
        idx = Signal(range(max(words(16), words(4 * cfg.cols), words(len(identify)))))
        last_idx = Signal.like(idx)
        # idx == last_idx, kept in a flip-flop (timing: the compare and the header's next step
        # in front of the 512-bit shift register's load were the ULX3S-85F's critical path).
        at_last = Signal()
        source = Signal(2)      # 0 header, 1 result row, 2 identify payload
        after = Signal(2)       # where the header goes next: 0 idle, 1 rows, 2 identify

        cycles, counting, done_pending = self._count_cycles(m)

        send_header = self._header_sender(m, hdr, source, idx, last_idx, at_last, after)

        res = self.results.payload
        row, row_words = self._result_row(m, row_bits)

        m.d.comb += self.tx.payload.eq(out[:8 * lb])

        with m.FSM():
            with m.State("IDLE"):
                self._choose_frame(m, send_header, cycles, done_pending)

            self._check_states(m, hdr, out)

            with m.State("ROW"):
                with m.If(self.results.valid):
                    m.d.sync += [out.eq(row), source.eq(1), idx.eq(0),
                                 last_idx.eq(row_words - 1), at_last.eq(row_words == 1)]
                    m.next = "SEND"

            with m.State("SEND"):
                m.d.comb += self.tx.valid.eq(1)
                with m.If(self.tx.valid & self.tx.ready):
                    m.d.sync += [idx.eq(idx + 1), out.eq(out >> (8 * lb)),
                                 at_last.eq(idx + 1 == last_idx)]
                    with m.If(at_last):
                        m.d.sync += idx.eq(0)
                        with m.Switch(source):
                            with m.Case(0):          # header done
                                with m.Switch(after):
                                    with m.Case(0):
                                        m.next = "IDLE"
                                    with m.Case(1):
                                        m.next = "ROW"
                                    with m.Case(2):
                                        m.d.sync += [
                                            source.eq(2), last_idx.eq(words(len(identify)) - 1),
                                            at_last.eq(words(len(identify)) == 1),
                                            out.eq(int.from_bytes(identify, "little"))]
                            with m.Case(1):          # a result row done: take it
                                m.d.comb += self.results.ready.eq(1)
                                with m.If(res.end):
                                    m.d.sync += [counting.eq(0), done_pending.eq(1)]
                                with m.If(res.last):
                                    m.next = "IDLE"
                                with m.Else():
                                    m.next = "ROW"
                            with m.Case(2):
                                m.next = "IDLE"
        return m

    def _count_cycles(self, m):
        """The GEMM's cycle count, from ``gemm_start``; ``busy`` is set there too.

        Returns
        -------
        cycles : Signal(48)
            Device cycles since ``gemm_start`` while ``counting``.
        counting : Signal
            Set at ``gemm_start``; the caller clears it at the last RESULT word's handshake.
        done_pending : Signal
            The GEMM reply is due; set and cleared by the caller.
        """
        cycles = Signal(48)
        counting = Signal()
        done_pending = Signal()
        with m.If(self.control.gemm_start):
            m.d.sync += [cycles.eq(0), counting.eq(1), self.busy.eq(1)]
        with m.Elif(counting):
            m.d.sync += cycles.eq(cycles + 1)
        return cycles, counting, done_pending

    def _header_sender(self, m, hdr, source, idx, last_idx, at_last, after):
        """A function that, called in a state of the FSM, registers a header into ``hdr``, sets
        up the shift register's count for it and goes to the check byte's states.

        Its arguments are the header's ``op``, ``status``, ``arg0``, ``arg1``, ``arg2`` and
        ``then``: where the FSM goes once the header is sent (0 idle, 1 rows, 2 identify).
        """
        hdr_words = protocol.words(16, self._config.link_bytes)

        def send_header(op, status=0, arg0=0, arg1=0, arg2=0, then=0):
            fields = Signal(Header)
            m.d.comb += [
                fields.magic.eq(protocol.MAGIC), fields.op.eq(op), fields.status.eq(status),
                fields.arg0.eq(arg0), fields.arg1.eq(arg1), fields.arg2.eq(arg2),
            ]
            m.d.sync += [
                hdr.eq(fields),
                source.eq(0), idx.eq(0), last_idx.eq(hdr_words - 1), after.eq(then),
                at_last.eq(hdr_words == 1),
            ]
            m.next = "CHECK"

        return send_header

    def _result_row(self, m, row_bits):
        """The result row on ``results`` as ``row_bits`` bits, column 0 in the low word, and its
        number of link words.

        Returns
        -------
        row : Signal(row_bits)
            The row's int32 sums; with link words wider than a sum, zeros after the row's
            ``cols`` columns.
        row_words : Value
            The link words the row's ``cols`` sums take.
        """
        lb = self._config.link_bytes
        log_lb = lb.bit_length() - 1
        res = self.results.payload
        row = Signal(row_bits)
        for c in range(self._config.cols):
            value = res.data[c]
            if lb > 4:      # the padding of a partial row's last word must be zeros
                value = Mux(c < res.cols, value, 0)
            m.d.comb += row.word_select(c, 32).eq(value)
        row_words = ((res.cols << 2) + lb - 1) >> log_lb
        return row, row_words

    def _choose_frame(self, m, send_header, cycles, done_pending):
        """In the idle state: starts the next frame's header, in priority order: CREDIT, a
        decoder reply, a RESULT frame, the GEMM reply."""
        res = self.results.payload
        with m.If(self.credit.credit_due):
            m.d.comb += self.credit.credit_sent.eq(1)
            send_header(Op.CREDIT | protocol.REPLY, arg0=self.credit.consumed)
        with m.Elif(self.reply.valid):
            m.d.comb += self.reply.ready.eq(1)
            rp = self.reply.payload
            is_identify = (rp.op == (Op.IDENTIFY | protocol.REPLY)) & (rp.status == 0)
            send_header(rp.op, rp.status, rp.arg0, rp.arg1, rp.arg2,
                        then=Mux(is_identify, 2, 0))
        with m.Elif(self.results.valid):
            send_header(Op.RESULT | protocol.REPLY, 0, res.row_tile, res.col_tile,
                        Cat(res.rows, Const(0, 16 - len(res.rows)), res.cols), then=1)
        with m.Elif(done_pending):
            m.d.sync += [done_pending.eq(0), self.busy.eq(0)]
            send_header(Op.GEMM | protocol.REPLY,
                        Mux(self.bad_scale, protocol.Status.BAD_SCALE, 0),
                        cycles[:32], cycles[32:], self.control.m)

    def _check_states(self, m, hdr, out):
        """The FSM's CHECK and CHECK_SUM states: the registered header ``hdr`` gets its check
        byte and goes into the shift register ``out``; then SEND."""
        part_lo = Signal(8)
        part_hi = Signal(8)
        with m.State("CHECK"):
            # The check byte from the registered header, in two cycles of its own (timing):
            # two partial sums, then their negated total.
            m.d.sync += [
                part_lo.eq(sum(hdr.as_value().word_select(i, 8) for i in range(8) if i != 3)),
                part_hi.eq(sum(hdr.as_value().word_select(i, 8) for i in range(8, 16))),
            ]
            m.next = "CHECK_SUM"

        with m.State("CHECK_SUM"):
            checked = Signal(Header)
            m.d.comb += [checked.eq(hdr), checked.check.eq(-(part_lo + part_hi))]
            m.d.sync += out.eq(checked)
            m.next = "SEND"
