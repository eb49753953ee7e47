"""Block unpacker: GGUF weight blocks (Q8_0, Q4_0, Q4_1) from link words to one block per beat.

The byte layouts are those of `systolica.host.block_formats` (32 weights per block, fields
little-endian, exactly as in a GGUF file). On the link, the weights of one GEMM weight tile come
as *groups*: for each 32-block index along K, the blocks of the tile's C' output channels in
channel order, zero-padded to a whole number of link words.

Structure
---------
One byte buffer ``buf`` of ``N = max(block_bytes) + link_bytes - 1`` bytes with a fill count
``cnt``; byte 0 is the earliest byte held. Each cycle:

* *emit*: when the buffer holds a whole block (``cnt >= block_bytes``) and the output register is
  free (empty, or its block leaves this cycle), bytes ``0 .. block_bytes-1`` are decoded into the
  output register and the buffer shifts down by ``block_bytes`` (one fixed shift per format);
  after the group's last block (``lane == C' - 1``) the whole rest of the buffer is dropped
  instead (see below), so the fill count becomes 0.
* *accept*: a link word is taken when, after this cycle's emit, the buffer holds less than one
  block of the current format (``block_bytes + link_bytes - 1`` bytes of the buffer are in use,
  whatever ``N``). It is written at the fill count left after the emit (``wp``): each buffer
  byte ``j`` takes word byte ``(j - wp) mod link_bytes`` when ``wp <= j < wp + link_bytes`` (a
  ``link_bytes``:1 mux per buffer byte: the shifter into the buffer).

Padding without a second shifter: a word of the next group is never accepted before the current
group's last block has been emitted. The room rule sees to that: while that block has not left,
the buffer holds at least one whole block after this cycle's emit (the group's remaining blocks
are all in once its last word is). So when that last block leaves, whatever else the buffer holds
is the padding of the group's last word, and the fill count simply goes to 0; the next group's
first word may be accepted in that same cycle, at buffer byte 0.

Timing and throughput: the ``blocks`` payload and valid come straight from flip-flops (the
output register), and so does ``words.ready``: words enter through a `SkidBuffer`, and "a word
fits" (which depends combinationally on ``blocks.ready``, as in a one-entry register stage)
is the skid buffer's ready, not the producer's. Latency: a block is at the output
(``blocks.valid``) three cycles after the cycle in which the word holding its last byte is taken
(a cycle in the skid buffer, one in the byte buffer, then the block is decoded into the output
register). ``N`` leaves room for a word in every cycle in which
no whole block is waiting, and in every cycle in which the one waiting leaves: with words shorter
than a block (``link_bytes`` up to 16) a word completes at most one block, so a consumer taking
one block per cycle lets the link run at one word (one byte with ``link_bytes = 1``) per cycle,
group boundaries included. With words at least a block long (32 or 64 bytes for Q4_0/Q4_1, 64
for Q8_0) the output is the limit, and within a tile it runs at one block per cycle.

Contract on ``group_blocks`` (C', 1 .. cols): it must hold the tile's value from the cycle after
the tile's first word is taken up to and including the cycle the tile's last block is emitted
into the output register. So: set it before presenting the tile's first word, and change it only
once the previous tile's last block is at the output (``blocks.valid`` with ``group_last``) or the
unpacker is idle. ``fmt`` is registered and read all the time: change it only between GEMMs, with
the unpacker empty, and at least one cycle before the GEMM's first word is presented. A format code the unpacker was not built for gives unspecified blocks (the decoder rejects
it first).
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from systolica.protocol import BLOCK_BYTES, Format

from .block_fields import block_layout, decode_block
from .control import UnpackerControlSignature
from .mux_tree import byte_select
from .skid_buffer import SkidBuffer

__all__ = ["BlockUnpacker"]


class BlockUnpacker(wiring.Component):
    """Splits link words carrying GGUF weight blocks into one decoded block per beat.

    Parameters
    ----------
    link_bytes : int
        Bytes per link word (a power of two, 1 .. 64); byte 0 is the earliest.
    cols : int
        The most blocks per group (the array's columns).
    formats : tuple of Format
        The block formats to carry (among Q8_0, Q4_0, Q4_1); logic is built for these only.

    Ports
    -----
    control : `UnpackerControlSignature` (in): ``fmt``, the `Format` code of the current GEMM;
        ``group_blocks``, C' (1 .. cols), the blocks per group of the current tile; ``idle``
        (out), no word or byte buffered and no group begun: ``group_blocks`` may change.
    words : stream of link words in (consecutive groups, each padded to whole words).
    blocks : stream of unpacked blocks out (`block_layout`), one per channel per group.
    """

    def __init__(self, link_bytes, cols, formats):
        if link_bytes < 1 or link_bytes > 64 or link_bytes & (link_bytes - 1):
            raise ValueError(f"link_bytes must be a power of two 1..64, not {link_bytes}")
        if cols < 1:
            raise ValueError(f"cols must be at least 1, not {cols}")
        formats = tuple(dict.fromkeys(Format(f) for f in formats))
        if not formats or any(f not in BLOCK_BYTES for f in formats):
            raise ValueError(f"formats must be among Q8_0, Q4_0, Q4_1, not {formats}")
        self._link_bytes = link_bytes
        self._cols = cols
        self._formats = formats
        self.buffer_bytes = max(BLOCK_BYTES[f] for f in formats) + link_bytes - 1
        super().__init__({
            "control": In(UnpackerControlSignature(cols)),
            "words": In(stream.Signature(8 * link_bytes)),
            "blocks": Out(stream.Signature(block_layout(cols))),
        })

    def elaborate(self, platform):
        m = Module()
        lb, cols, n = self._link_bytes, self._cols, self.buffer_bytes

        # Words come in through a skid buffer: its ready is a register, so whether a word fits
        # (which depends on the fill count, the format and the consumer) stays off the
        # producer's logic (the decoder's, on the ECP5 builds' critical path).
        m.submodules.skid = skid = SkidBuffer(8 * lb)
        connect(m, wiring.flipped(self.words), skid.i)
        words = skid.o

        buf = Signal(8 * n)
        cnt = Signal(range(n + 1))              # bytes held, buf bytes 0 .. cnt-1
        lane = Signal(range(cols))              # blocks of the current group emitted so far

        # Per format (selected by fmt): the buffer shifted down by one block, the fill count
        # after that (and with a word added), the decoded block; and, for each way the cycle
        # can end, whether the next fill count holds a whole block and whether a word fits after
        # an emit (less than a block left). Those two are registers (timing: from ``cnt``
        # through a compare into ``emit`` and the byte buffer's enables was the ULX3S-25F's
        # critical path); the compares for the next count are made from ``cnt`` side by side.
        has = Signal()                          # a whole block held (cnt >= block bytes)
        room_after_emit = Signal(init=1)        # cnt < 2 × block bytes
        kept, rest, rest_plus, (d, mo, q, bad), has_next, room_next = self._per_format(m, buf, cnt)

        out_free = ~self.blocks.valid | self.blocks.ready
        emit = Signal()
        m.d.comb += emit.eq(has & out_free)
        # Whether this emit ends the group (lane + 1 == group_blocks) is a register, loaded for
        # the next lane (timing: the compare from group_blocks into the word's ready and the
        # byte buffer's enables was an ECP5 build's critical path). At lane 0 it follows
        # group_blocks, which changes only while idle: no block is held then (``has`` is 0), so
        # the group's first emit is at least a cycle after the change.
        last = Signal()
        with m.If(emit):
            m.d.sync += last.eq(Mux(last, self.control.group_blocks == 1,
                                    lane + 2 == self.control.group_blocks))
        with m.Elif(lane == 0):
            m.d.sync += last.eq(self.control.group_blocks == 1)

        # The cycle ends in one of three ways: no emit (an accepted word is written at cnt),
        # an emit within the group (at cnt - block bytes), the group's last emit (at 0: the
        # rest is the group's padding and is dropped). What each means for the room check, the
        # word's position in the buffer and the next fill count is computed for all three
        # from the registered cnt, side by side, and only selected by emit and last: no chain
        # of compare, subtract, compare and add from cnt back to cnt (timing).
        take = Signal()
        m.d.comb += [
            words.ready.eq(Mux(emit, last | room_after_emit, ~has)),
            take.eq(words.valid & words.ready),
        ]
        self._write_buffer(m, buf, Mux(emit, kept, buf), cnt, rest, words.payload,
                           take, emit, last)

        def next_count(value, way):
            m.d.sync += cnt.eq(value)
            if way is None:         # empty
                m.d.sync += [has.eq(0), room_after_emit.eq(1)]
            else:
                m.d.sync += [has.eq(has_next[way]), room_after_emit.eq(room_next[way])]

        with m.If(take):
            with m.If(emit & last):
                next_count(lb, "lb")
            with m.Elif(emit):
                next_count(rest_plus, "emit_word")
            with m.Else():
                next_count(cnt + lb, "word")
        with m.Elif(emit & last):
            next_count(0, None)
        with m.Elif(emit):
            next_count(rest, "emit")

        # Nothing buffered and no group begun: group_blocks may change (the output register
        # may still hold the previous group's last block).
        m.d.comb += self.control.idle.eq((cnt == 0) & (lane == 0) & ~words.valid)
        with m.If(emit):
            m.d.sync += lane.eq(Mux(last, 0, lane + 1))
        with m.If(out_free):
            m.d.sync += self.blocks.valid.eq(has)
        with m.If(emit):
            p = self.blocks.payload
            m.d.sync += [p.lane.eq(lane), p.d.eq(d), p.m.eq(mo), p.q.eq(q), p.bad_scale.eq(bad),
                         p.group_last.eq(last)]
        return m

    def _per_format(self, m, buf, cnt):
        """The logic per format (selected by ``control.fmt``): ``(kept, rest, rest_plus, (d, m, q,
        bad_scale), has_next, room_next)``, the last two keyed by the way the cycle ends."""
        lb, n = self._link_bytes, self.buffer_bytes
        kept = Signal(8 * n)
        rest = Signal(range(n + 1))
        rest_plus = Signal(range(n + lb + 1))
        d, mo, q, bad = Signal(16), Signal(16), Signal(8 * 32), Signal()
        # The flags for a next count of cnt + lb, cnt - bb + lb, cnt - bb and lb.
        has_next = {way: Signal(name=f"has_{way}") for way in ("word", "emit_word", "emit", "lb")}
        room_next = {way: Signal(name=f"room_{way}") for way in has_next}

        def at_least(value):
            return cnt >= value if value > 0 else Const(1)

        def per_format(f):
            bb = BLOCK_BYTES[f]
            fd, fm, fq, fbad = decode_block(f, [buf[8 * j:8 * j + 8] for j in range(bb)])
            m.d.comb += [
                kept.eq(buf[8 * bb:]),
                rest.eq(cnt - bb),
                rest_plus.eq(cnt + (lb - bb)),
                d.eq(fd), mo.eq(fm), q.eq(fq), bad.eq(fbad),
                has_next["word"].eq(at_least(bb - lb)),
                has_next["emit_word"].eq(at_least(2 * bb - lb)),
                has_next["emit"].eq(at_least(2 * bb)),
                has_next["lb"].eq(lb >= bb),
                room_next["word"].eq(~at_least(2 * bb - lb)),
                room_next["emit_word"].eq(~at_least(3 * bb - lb)),
                room_next["emit"].eq(~at_least(3 * bb)),
                room_next["lb"].eq(lb < 2 * bb),
            ]

        if len(self._formats) == 1:
            per_format(self._formats[0])
        else:
            # The format as one flip-flop per format, here (timing: ``fmt`` is the decoder's
            # register, and its route across the chip into the byte buffer's enables was an
            # every-format ECP5 build's critical path). ``fmt`` is set at least two cycles
            # before a GEMM's first word reaches the byte buffer (through the skid buffer).
            is_fmt = {f: Signal(name=f"is_{f.name.lower()}") for f in self._formats[:-1]}
            for f, bit in is_fmt.items():
                m.d.sync += bit.eq(self.control.fmt == f)
            for i, f in enumerate(self._formats):
                if i == 0:
                    ctx = m.If(is_fmt[f])
                elif i < len(self._formats) - 1:
                    ctx = m.Elif(is_fmt[f])
                else:
                    ctx = m.Else()
                with ctx:
                    per_format(f)
        return kept, rest, rest_plus, (d, mo, q, bad), has_next, room_next

    def _write_buffer(self, m, buf, base, cnt, rest, word, take, emit, last):
        """The shifter into the buffer: byte j takes word byte (j - wp) mod lb if it lands there,
        wp being the write position (cnt, rest or 0); the other bytes take ``base``'s."""
        lb, n = self._link_bytes, self.buffer_bytes
        lbits = (lb - 1).bit_length()

        def lands(wp, j):
            if lb == 1:
                return wp == j
            return (wp <= j) & (wp > j - lb) if j >= lb else wp <= j

        def word_byte(wp, j):
            if lb == 1:
                return word
            return byte_select(word, (Const(j % lb, lbits) - wp[:lbits])[:lbits])

        for j in range(n):
            hit = Mux(emit, Mux(last, j < lb, lands(rest, j)), lands(cnt, j))
            wbyte = Mux(emit & ~last, word_byte(rest, j), word_byte(cnt, j))
            if j < lb:
                wbyte = Mux(emit & last, word.word_select(j, 8) if lb > 1 else word, wbyte)
            m.d.sync += buf[8 * j:8 * j + 8].eq(Mux(take & hit, wbyte, base[8 * j:8 * j + 8]))
