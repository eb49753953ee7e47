"""The fuzzer's bursts of malformed frames (tests/cocotb_fuzz.py): one method per kind of
damage, each returning the bytes and what they were meant to be."""

from fuzz_burst import Burst, FrameMaker
from fuzz_model import op_name, payload_bytes, scan_headers

from systolica.host.block_formats import BLOCK
from systolica.protocol import (
    HEADER_BYTES,
    MAGIC,
    Op,
    crc_word,
    crc_word_bytes,
    pack_header,
    padded,
)

__all__ = ["KINDS", "Generator"]

KINDS = ("random_bytes", "header_flip", "payload_flip", "truncated", "bad_size",
         "unknown_opcode", "magic_payload", "embedded_headers", "garbage_between")


class Generator(FrameMaker):
    """Makes bursts of malformed frames and valid commands (seeded)."""

    def random_bytes(self, tags):
        size = self._words(self.rng.randint(1, 96))
        return self._random(size, magic=self.rng.choice([0.0, 0.0, 0.5])), f"{size} bytes"

    def header_flip(self, tags):
        tag = self.next_tag()
        tags.append(tag)
        data, what = self._damaged(tag)
        data, bits = self._flip(data, 0, HEADER_BYTES)
        return data, f"{what}, header bits {bits} flipped"

    def payload_flip(self, tags):
        tag = self.next_tag()
        tags.append(tag)
        data, what = self._damaged(tag, ops=(Op.LOAD_A, Op.GEMM))
        data, bits = self._flip(data, HEADER_BYTES, len(data))
        return data, f"{what}, payload bits {bits} flipped"

    def truncated(self, tags):
        tag = self.next_tag()
        tags.append(tag)
        data, what = self._damaged(tag)
        cut = self.rng.randint(1, len(data) - 1)
        return data[:cut], f"{what}, cut to {cut} of {len(data)} bytes"

    def _length_and_payload(self, args_size=None):
        """A header's ``length`` that is wrong or strange, and the bytes sent after the header:
        (length, bytes, description)."""
        r, lb = self.rng, self.lb
        choices = ["zero", "small", "huge", "odd"] if lb > 1 else ["zero", "small", "huge"]
        if args_size is not None:
            choices += ["more", "less"]
        how = r.choice(choices)
        if how == "zero":
            return 0, b"", "length 0"
        if how == "huge":
            # Aligned: a refused header's payload is skipped until the idle abort.
            length = r.randrange(1 << 16, 1 << 32) // lb * lb
            if r.random() < 0.5:
                length = r.choice([0xFFFFFFFF // lb * lb, 1 << 31])
            return length, self._random(self._words(r.randint(0, 64)), 0.3), f"length {length}"
        if how == "odd":
            length = padded(r.randint(1, 200), lb) + r.randint(1, lb - 1)
            return length, self._payload(padded(length, lb)), f"length {length} (not words)"
        if how == "small":
            length = padded(r.randint(1, 200), lb)
        elif how == "more":
            length = args_size + lb * r.randint(1, 16)
        else:
            length = max(lb, args_size - lb * r.randint(1, 16))
        return length, self._payload(length, r.random() < 0.7), f"length {length}"

    def bad_size(self, tags):
        """A header whose CRC is right but whose sizes, format or length are impossible."""
        r, cfg = self.rng, self.cfg
        tag = self.next_tag()
        tags.append(tag)
        n, k = r.randint(1, 2 * cfg.rows + 1), r.randint(1, 40)
        m = r.randint(1, 2 * cfg.cols + 1)
        big = r.randint(0x10000, 0xFFFFFFFF)
        ln, lk, lblocks = self.loaded or (n, k, False)
        code = r.choice(cfg.block_formats or (1,)) if lblocks else 0
        variants = {
            "LOAD_A N=0": (Op.LOAD_A, (0, k, 0)),
            "LOAD_A N>65535": (Op.LOAD_A, (big, k, 0)),
            "LOAD_A K=0": (Op.LOAD_A, (n, 0, 0)),
            "LOAD_A K>max_k": (Op.LOAD_A, (n, r.choice([cfg.max_k + 1, big]), 0)),
            "LOAD_A over act_depth": (Op.LOAD_A, (cfg.rows * (cfg.act_depth // k + 1)
                                                  - r.randrange(cfg.rows), k, 0)),
            "LOAD_A format": (Op.LOAD_A, (n, k, r.choice([2, 3, 0x80, big]))),
            "LOAD_A blocks K%32": (Op.LOAD_A, (n, r.choice([k, 33, 47, 100]) | 1, 1)),
            "GEMM N=0": (Op.GEMM, (0, lk, m | code << 24)),
            "GEMM K=0": (Op.GEMM, (ln, 0, m | code << 24)),
            "GEMM K>max_k": (Op.GEMM, (ln, r.choice([cfg.max_k + 1, big]), m | code << 24)),
            "GEMM M=0": (Op.GEMM, (ln, lk, code << 24)),
            "GEMM M>65535": (Op.GEMM, (ln, lk, r.randint(0x10000, 0xFFFFFF) | code << 24)),
            "GEMM format": (Op.GEMM, (ln, lk, m | r.choice([4, 5, 0x80, 0xFF, 1 - lblocks, 2,
                                                               3]) << 24)),
            "GEMM not loaded": (Op.GEMM, (ln + r.randint(1, 3), lk, m | code << 24)),
            "IDENTIFY with length": (Op.IDENTIFY, (0, 0, 0)),
            "LOAD_A length": (Op.LOAD_A, (ln, lk, int(lblocks))),
            "GEMM length": (Op.GEMM, (ln, lk, m | code << 24)),
        }
        name = r.choice(list(variants))
        op, args = variants[name]
        args = tuple(a & 0xFFFFFFFF for a in args)
        size = None
        if name.endswith(" length") and op != Op.IDENTIFY:
            size = payload_bytes(op, args, cfg)
        length, tail, how = self._length_and_payload(size)
        if name == "IDENTIFY with length" and not length:
            length, tail, how = self._length_and_payload()
        return pack_header(op, *args, tag=tag, length=length) + tail, f"{name} {args}, {how}"

    def unknown_opcode(self, tags):
        r = self.rng
        tag = self.next_tag()
        tags.append(tag)
        op = r.choice([0x00, 0x04, 0x10, 0x11, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x90, 0x91, 0xFF,
                       r.randint(4, 0xFF), r.randint(4, 0xFF)])
        args = [r.getrandbits(32) for _ in range(3)]
        extra = {}
        if r.random() < 0.2:
            field = r.choice(["status", "info", "arg3"])
            extra[field] = r.randint(1, 0xFF if field == "status" else 0xFFFFFFFF)
        length, tail, how = self._length_and_payload()
        head = pack_header(op, *args, tag=tag, length=length, **extra)
        return head + tail, f"op 0x{op:02x} {extra or ''}, {how}"

    def _framed(self, op, args, payload, tag, crc_ok):
        word = crc_word(payload, self.lb)
        if not crc_ok:
            data, _ = self._flip(payload + word, 0, len(payload) + len(word))
        else:
            data = payload + word
        return pack_header(op, *args, tag=tag, length=len(payload)) + data

    def _shape(self, op, min_bytes=0):
        """Arguments of a small LOAD_A or GEMM (GEMM: mostly for the A meant to be loaded) and
        their payload's size, grown towards ``min_bytes`` (a GEMM's only so far)."""
        r, cfg = self.rng, self.cfg
        if op == Op.LOAD_A:
            blocks = self._use_blocks()
            n = r.randint(1, 2 * cfg.rows + 1)
            k = BLOCK * r.randint(1, 2) if blocks else r.randint(1, 48)
            while payload_bytes(op, (n, k, int(blocks)), cfg) < min_bytes:
                if k < (2 * BLOCK if blocks else cfg.max_k):
                    k = min(k + (BLOCK if blocks else 8), cfg.max_k)
                else:
                    n += 1
            args = (n, k, int(blocks))
        else:
            n, k, blocks = self._gemm_shape()
            code = r.choice(cfg.block_formats or (1, 2, 3)) if blocks else 0
            m = r.randint(1, 2 * cfg.cols + 1)
            while payload_bytes(op, (n, k, m | code << 24), cfg) < min_bytes and (
                    m < 4 * cfg.cols + 8):
                m += 1
            args = (n, k, m | code << 24)
        return args, payload_bytes(op, args, cfg)

    def magic_payload(self, tags):
        """A LOAD_A or GEMM whose payload is all MAGIC bytes, its CRC word right or not; or an
        unknown opcode's whole-word payload of MAGIC bytes (skipped by its length)."""
        r = self.rng
        tag = self.next_tag()
        tags.append(tag)
        crc_ok = r.random() < 0.5
        if r.random() < 0.25:
            payload = bytes([MAGIC]) * padded(r.randint(1, 160), self.lb)
            data = self._framed(0x7E, (1, 2, 3), payload, tag, crc_ok)
            return data, f"op 0x7e, {len(payload)} MAGIC bytes, CRC {'right' if crc_ok else 'bad'}"
        op = r.choice([Op.LOAD_A, Op.GEMM])
        args, size = self._shape(op)
        if op == Op.LOAD_A and crc_ok and (not args[2] or self.blocks):
            self.loaded = (args[0], args[1], bool(args[2]))
        data = self._framed(op, args, bytes([MAGIC]) * size, tag, crc_ok)
        return data, f"{op.name} {args} of MAGIC bytes, CRC {'right' if crc_ok else 'bad'}"

    def _inner_header(self):
        """A whole valid header to hide in a payload (a fresh tag): (bytes, description)."""
        r = self.rng
        tag = self.next_tag()
        what = r.choice(["IDENTIFY", "op", "LOAD_A", "GEMM"])
        if what == "IDENTIFY":
            return tag, pack_header(Op.IDENTIFY, tag=tag), "IDENTIFY"
        if what == "op":
            return tag, pack_header(0x7E, 1, tag=tag), "op 0x7e"
        op = Op.LOAD_A if what == "LOAD_A" else Op.GEMM
        args, size = self._shape(op)
        return tag, pack_header(op, *args, tag=tag, length=size), f"{op.name} {args}"

    def embedded_headers(self, tags):
        """A payload that holds whole valid headers on word boundaries (its CRC word right or
        not): of a LOAD_A or GEMM (taken by the router: no header in it may be answered), or of
        a refused header (skipped by its length: the same)."""
        r = self.rng
        tag = self.next_tag()
        tags.append(tag)
        crc_ok = r.random() < 0.6
        refused = r.random() < 0.3
        if refused:
            op, args = 0x7E, (1, 2, 3)
            size = padded(r.randint(32, 200), self.lb)
        else:
            op = r.choice([Op.LOAD_A, Op.GEMM])
            args, size = self._shape(op, min_bytes=2 * HEADER_BYTES)
            if size < 2 * HEADER_BYTES:
                op, args = 0x7E, (1, 2, 3)
                size = padded(r.randint(32, 200), self.lb)
        payload = bytearray(self._random(size))
        inner = []
        slots = list(range(0, size - HEADER_BYTES + 1, self.lb))
        for _ in range(r.randint(1, 3)):
            if not slots:
                break
            at = r.choice(slots)
            itag, head, what = self._inner_header()
            tags.append(itag)
            payload[at:at + HEADER_BYTES] = head
            inner.append(f"{what} tag {itag} at +{at}")
            slots = [s for s in slots if s + HEADER_BYTES <= at or s >= at + HEADER_BYTES]
        data = self._framed(op, args, bytes(payload), tag, crc_ok)
        return data, (f"{op_name(op)} {args} holding {', '.join(inner)}, "
                      f"CRC {'right' if crc_ok else 'bad'}")

    def garbage_between(self, tags):
        """Garbage, then a valid command right behind it."""
        r = self.rng
        how = r.choice(["zeros", "ones", "magic", "prefix", "random"])
        if how == "zeros":
            junk = bytes(self.lb * r.randint(1, 4))
        elif how == "ones":
            junk = b"\xff" * r.randint(1, 40)
        elif how == "magic":
            junk = bytes([MAGIC]) + self._random(r.randint(1, 40))
        elif how == "prefix":
            ptag = self.next_tag()
            tags.append(ptag)
            head = pack_header(r.choice([Op.IDENTIFY, Op.LOAD_A, Op.GEMM]), 1, 1, 1, tag=ptag)
            junk = head[:r.randint(1, HEADER_BYTES - 1)]
        else:
            junk = self._random(r.randint(1, 40), 0.5)
        junk += self._random(self._words(len(junk)) - len(junk))
        tag = self.next_tag()
        tags.append(tag)
        data, what = self.valid(tag)
        return junk + data, f"{len(junk)} bytes of {how}, then {what}"

    def _open_end(self, data):
        """Bytes past the end of ``data`` up to which a header in it may still be taking or
        skipping its payload (a whole header's worth at least, for a header being found); None
        if that is far (a huge skip: only the idle abort ends it)."""
        cfg, lb = self.cfg, self.lb
        most = HEADER_BYTES
        for pos, h in scan_headers(data):
            n, k, arg2 = h.args
            if pos % lb:
                continue
            ends = []
            if h.length and h.length % lb == 0:
                ends.append(h.length)
            if 1 <= n <= 0xFFFF and 1 <= k <= cfg.max_k and (
                    (h.op == Op.LOAD_A and arg2 <= 1 and -(-n // cfg.rows) * k <= cfg.act_depth)
                    or (h.op == Op.GEMM and 1 <= arg2 & 0xFFFFFF <= 0xFFFF and arg2 >> 24 < 4)):
                ends.append(payload_bytes(h.op, h.args, cfg))
            for size in ends:
                most = max(most, pos + HEADER_BYTES + size + crc_word_bytes(lb) - len(data))
        return most if most <= 4096 else None

    def burst(self, index):
        r, lb = self.rng, self.lb
        burst = Burst(index)
        for _ in range(r.randint(3, 14)):
            tags = []
            if r.random() < 0.3:
                tag = self.next_tag()
                data, what = self.valid(tag)
                burst.add("valid", data, [tag], what)
            else:
                kind = r.choice(KINDS)
                data, what = getattr(self, kind)(tags)
                burst.add(kind, data, tags, what)
            if len(burst.data) % lb and r.random() < 0.7:
                fill = self._random(-len(burst.data) % lb)
                burst.add("realign", fill, [], f"{len(fill)} bytes")
        burst.data += bytes(-len(burst.data) % lb)
        # Most bursts end with zero words that finish (or fill) whatever frame is still open, so
        # that only the others wait for the idle abort.
        close = self._open_end(bytes(burst.data))
        if close is not None and r.random() < 0.75:
            burst.add("close", bytes(padded(close, lb)), [], f"{padded(close, lb)} zero bytes")
        return burst


# --- the test --------------------------------------------------------------------------------
