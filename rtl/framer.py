"""Reply framer: turns replies, result rows and credit into frames of link words (protocol v2)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from systolica import protocol
from systolica.protocol import REPLY, Op, Status

from .control import CreditSignature, GemmControlSignature
from .drain import ResultRow
from .frame_layouts import Reply
from .gemm_cycles import count_cycles
from .header_sender import header_sender
from .reply_crc import crc_states
from .row_picker import RowPicker
from .whole_frame import WholeFrame

__all__ = ["Framer"]

def _times(a, b):
    """``a * b`` as shifts and adds over ``a``'s few bits (a ``*`` takes a DSP block)."""
    return sum(Mux(a[i], b << i, 0) for i in range(len(a)))


class Framer(wiring.Component):
    """Sends frames on ``tx``, one at a time, in priority order: CREDIT, a decoder reply,
    RESULT frames, the GEMM reply.

    Headers end with their CRC; a frame with a payload ends with its CRC word. The GEMM reply
    waits for its last RESULT frame and ``control.payload_done`` (in either order) and carries
    the device cycles from ``gemm_start`` to the last RESULT row's last word.

    Ports
    -----
    tx : stream out of link words (byte 0 in the low bits), straight from flip-flops.
    reply : stream in of the decoder's `Reply`; its fields go into a header; an IDENTIFY reply
        with status 0 gets ``length`` 32 and the configuration as its payload.
    results : stream in of `ResultRow`; a row is taken once its last word has been sent (with
        `Config.row_hold` its words are picked from the payload, which must hold meanwhile, by
        a `RowPicker`). A tile's first row starts a RESULT frame (tag ``control.tag``,
        ``length`` = rows x the row's padded bytes); its last row ends the frame (then its CRC
        word); ``end`` ends the GEMM. On a device with DRAM a GEMM_DRAM of N <= rows sends one
        frame for all its tiles (`WholeFrame`).
    credit : the link adapter's credit exchange: ``credit_due`` asks for a CREDIT frame (arg0 =
        ``consumed``, tag 0); ``credit_sent`` says ``consumed`` was taken into its header.
    control : the decoder's command control: ``gemm_start`` starts the count, sets ``busy`` and
        clears the payload flag, ``payload_done`` sets it; ``m`` and ``tag`` go into the GEMM
        reply (``n``, ``m`` and ``stored`` into a whole frame's header and length), whose status is ``payload_status`` if not 0, else ``BAD_SCALE`` if
        ``bad_scale``, else 0.
    busy : out; set from ``gemm_start`` until the GEMM reply has been sent.
    bad_scale : in; the GEMM met an inf/NaN block scale.
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
            "bad_scale": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        lb = cfg.link_bytes
        identify = cfg.identify_payload()

        def words(nbytes):
            return protocol.words(nbytes, lb)

        # What goes out (a header, a result row, the IDENTIFY payload or a CRC word) is loaded
        # into one shift register and leaves from its low word, one word per handshake: the link
        # word comes straight from flip-flops (timing: a word select over a whole row, plus the
        # choice of source, was the ECP5 build's critical path into the transmit FIFO). A header
        # is loaded into it directly, with no register of its own (lb = 1: 130 fewer flip-flops).
        row_bits = 8 * lb * words(4 * cfg.cols)
        # `Config.row_hold`: a result row is not loaded into the shift register: its words are
        # picked from ``results`` (held there by a `RowHold`) one at a time into the low word.
        hold = cfg.row_hold
        out = Signal(max(0 if hold else row_bits, 8 * lb * words(len(identify)),
                         8 * protocol.HEADER_BYTES))
        idx = Signal(range(max(words(protocol.HEADER_BYTES), words(4 * cfg.cols),
                               words(len(identify)))))
        last_idx = Signal.like(idx)
        # idx == last_idx, kept in a flip-flop (timing: the compare and the header's next step
        # in front of the 512-bit shift register's load were the ULX3S-85F's critical path).
        at_last = Signal()
        source = Signal(2)      # 0 header, 1 result row, 2 identify payload, 3 a CRC word
        after = Signal(2)       # after the header (and its CRC): 0 idle, 1 rows, 2 identify

        def load(value, src, nwords):
            """Loads ``value`` into the shift register, to leave as ``nwords`` words."""
            m.d.sync += [out.eq(value), source.eq(src), idx.eq(0), last_idx.eq(nwords - 1),
                         at_last.eq(nwords == 1)]

        # `Config.framer_state_loads`: the shift register's next value is chosen by the state
        # alone (each loading state loads its source every cycle it is in; the identify payload
        # gets a state of its own), not by the frame choice's logic in front of 512 enables.
        flat = cfg.framer_state_loads

        def load_identify():
            load(int.from_bytes(identify, "little"), 2, words(len(identify)))

        def go_after():
            with m.Switch(after):
                with m.Case(0):
                    m.next = "IDLE"
                with m.Case(1):
                    m.next = "ROW"
                with m.Case(2):
                    if flat:
                        m.next = "IDENTIFY"
                    else:
                        load_identify()

        cycles, counting, done_pending, checked = count_cycles(m, self.control, self.busy)
        whole = None
        if cfg.dram_mib:
            m.submodules.whole = whole = WholeFrame(cfg)
            ctl = self.control
            # An argmax's one row is a frame of its own, not a whole frame.
            stored = ctl.stored & ~ctl.argmax if "argmax" in ctl.signature.members else ctl.stored
            m.d.comb += [whole.start.eq(ctl.gemm_start), whole.stored.eq(stored),
                         whole.n.eq(self._n_out()), whole.m.eq(ctl.m)]
        send_header, header = header_sender(m, cfg, load, after)
        row, row_words = self._result_row(m, row_bits)
        serial = lb <= 4
        payload_end = "CRC" if serial else "CRC_END"

        m.d.comb += self.tx.payload.eq(out[:8 * lb])

        with m.FSM():
            with m.State("IDLE"):
                if flat:
                    header()
                self._choose_frame(m, send_header, row_words, cycles, done_pending, checked,
                                   whole)

            feed = crc_states(m, lb, out, idx, load)

            next_word = self._fetch_state(m, out) if hold else None

            def load_row():
                load(0 if hold else row, 1, row_words)

            with m.State("ROW"):
                if flat:
                    load_row()
                with m.If(self.results.valid):
                    if not flat:
                        load_row()
                    if hold:
                        next_word(first=True)
                    else:
                        m.next = "SEND"

            if flat:
                with m.State("IDENTIFY"):
                    load_identify()
                    m.next = "SEND"

            self._send_state(m, out, idx, last_idx, at_last, source, after, feed, next_word,
                             go_after, counting, done_pending, whole, payload_end)
        return m

    def _fetch_state(self, m, out):
        """FETCH (`Config.row_hold`): a `RowPicker` brings each row word into the shift
        register's low word. Returns ``next_word(first)``, which goes to FETCH for the next."""
        lb = self._config.link_bytes
        m.submodules.picker = picker = RowPicker(self._config)
        word = Signal.like(picker.word)         # the row word to fetch next
        fetch = Signal(range(picker.latency + 1))
        m.d.comb += [picker.row.eq(self.results.payload.data.as_value()), picker.word.eq(word)]

        def next_word(first):
            m.d.sync += [word.eq(0 if first else word + 1), fetch.eq(picker.latency)]
            m.next = "FETCH"

        with m.State("FETCH"):
            m.d.sync += fetch.eq(fetch - 1)
            with m.If(fetch == 0):
                m.d.sync += out[:8 * lb].eq(picker.picked)
                m.next = "SEND"
        return next_word

    def _send_state(self, m, out, idx, last_idx, at_last, source, after, feed, next_word,
                    go_after, counting, done_pending, whole, payload_end):
        """SEND: the shift register's low word leaves; at its last word the frame goes on by
        ``source``: a header to its CRC (serial) or what follows it, a result row taken (the
        frame's or the GEMM's end), the identify payload to its CRC word, a CRC word to what
        follows the frame."""
        lb = self._config.link_bytes
        hold, serial = self._config.row_hold, lb <= 4
        res = self.results.payload
        with m.State("SEND"):
            m.d.comb += self.tx.valid.eq(1)
            with m.If(self.tx.ready):
                m.d.sync += [idx.eq(idx + 1), out.eq(out >> (8 * lb)),
                             at_last.eq(idx + 1 == last_idx)]
                if hold:
                    with m.If((source == 1) & ~at_last):
                        next_word(first=False)
                feed(source, out[:8 * lb])
                with m.If(at_last):
                    with m.Switch(source):
                        with m.Case(0):          # the header (serial: its bytes 0-27)
                            if serial:
                                m.next = "CRC"
                            else:
                                go_after()
                        with m.Case(1):          # a result row done: take it
                            m.d.comb += self.results.ready.eq(1)
                            with m.If(res.end):
                                m.d.sync += [counting.eq(0), done_pending.eq(1)]
                            frame_ends = res.last
                            if whole is not None:   # a whole frame ends with the GEMM
                                frame_ends &= ~whole.on | res.end
                            with m.If(frame_ends):
                                m.d.sync += after.eq(0)
                                m.next = payload_end
                            with m.Else():
                                m.next = "ROW"
                        with m.Case(2):
                            m.d.sync += after.eq(0)
                            m.next = payload_end
                        with m.Case(3):          # a CRC word
                            go_after()

    def _result_row(self, m, row_bits):
        """The result row on ``results`` as ``row_bits`` bits (``row``: its int32 sums, column 0
        in the low word; with link words wider than a sum, zeros after its ``cols`` columns) and
        ``row_words``, the link words its ``cols`` sums take."""
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

    def _n_out(self):
        """The rows of results the GEMM sends: N, or N/2 with pair sums (`PairSum`)."""
        ctl = self.control
        if "pair" not in ctl.signature.members:
            return ctl.n
        return Mux(ctl.pair, ctl.n >> 1, ctl.n)

    def _choose_frame(self, m, send_header, row_words, cycles, done_pending, checked, whole):
        """In the idle state: starts the next frame's header, in priority order: CREDIT, a
        decoder reply, a RESULT frame, the GEMM reply (once both ``done_pending`` and
        ``checked``). A whole frame (``whole.on``) waits for ``whole.ready``; its header has
        i = j = 0 and N x M."""
        lb = self._config.link_bytes
        res = self.results.payload
        ctl = self.control
        with m.If(self.credit.credit_due):
            m.d.comb += self.credit.credit_sent.eq(1)
            send_header(Op.CREDIT | REPLY, arg0=self.credit.consumed)
        with m.Elif(self.reply.valid):
            m.d.comb += self.reply.ready.eq(1)
            rp = self.reply.payload
            is_identify = (rp.op == (Op.IDENTIFY | REPLY)) & (rp.status == 0)
            ident_len = protocol.padded(len(self._config.identify_payload()), lb)
            send_header(rp.op, rp.status, rp.tag, rp.arg0, rp.arg1, rp.arg2,
                        length=Mux(is_identify, ident_len, 0), info=rp.info,
                        then=Mux(is_identify, 2, 0))
        tile = (res.row_tile, res.col_tile, Cat(res.rows, Const(0, 16 - len(res.rows)), res.cols),
                _times(res.rows, row_words) << (lb.bit_length() - 1))
        if whole is None:
            result_valid, fields = self.results.valid, tile
        else:
            result_valid = self.results.valid & (~whole.on | whole.ready)
            fields = [Mux(whole.on, w, t) for w, t in
                      zip((0, 0, Cat(self._n_out(), ctl.m), whole.length), tile, strict=True)]
        with m.Elif(result_valid):
            i, j, shape, length = fields
            send_header(Op.RESULT | REPLY, 0, ctl.tag, i, j, shape, length=length, then=1)
        with m.Elif(done_pending & checked):
            m.d.sync += [done_pending.eq(0), self.busy.eq(0)]
            status = Mux(ctl.payload_status != 0, ctl.payload_status,
                         Mux(self.bad_scale, Status.BAD_SCALE, 0))
            send_header(Op.GEMM | REPLY, status, ctl.tag, cycles[:32], cycles[32:], ctl.m)
