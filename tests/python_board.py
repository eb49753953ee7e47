"""A device in plain Python behind a `Link`, for testing the host without a simulator build.

It speaks protocol v2 as `systolica.protocol` writes it down: it checks every header's CRC and
``length`` and every payload's CRC word, answers IDENTIFY (``config.identify_payload()``, its
features included), LOAD_A and GEMM (int8 with numpy; the block formats the config carries with
`block_formats.block_gemm_reference`) with the command's tag, and sends a CREDIT frame after each
write for everything it has taken. ``tamper(op, reply)`` may change each reply frame's bytes on
its way out (op without the reply bit; CREDIT frames are not tampered with); ``gemm_status`` is
the GEMM replies' status. With ``config.dram_mib`` it has that much DRAM (``dram``, a bytearray)
and answers WRITE_DRAM and GEMM_DRAM too, checking their ranges (``BAD_LENGTH``) and a stored
payload's CRC word (``BAD_CRC`` in the GEMM reply), a block-format GEMM_DRAM's
``PAIR_SUM`` (the sums of result rows 2t and 2t+1, `fp32_model.f32_add`; ``BAD_LENGTH`` on a
GEMM, on int8, with an odd N or without `Feature.PAIR_SUM`) and ``ARGMAX`` (one RESULT of the
largest result's column and bits, by `fp32_model.f32_order_key`, the first of equal ones;
``BAD_LENGTH`` on a GEMM, on int8, with results of more than one row or without
`Feature.ARGMAX`); without DRAM, they get ``BAD_OPCODE``.
"""

import numpy as np
from fuzz_model import block_scales_bad, decode_gemm, decode_load, format_of, inf_nan

from systolica import protocol
from systolica.fp32_model import f32_add, f32_order_key
from systolica.host.block_formats import BLOCK, block_gemm_reference
from systolica.host.link import Link, LinkTimeout
from systolica.protocol import (
    ARGMAX,
    DRAM_WORD_BYTES,
    HEADER_BYTES,
    MAGIC,
    MAX_WRITE_DRAM,
    PAIR_SUM,
    REPLY,
    Feature,
    Op,
    Status,
    crc_word_bytes,
    padded,
)

__all__ = ["PythonBoard"]


class PythonBoard(Link):
    name = "python board"

    def __init__(self, config, *, tamper=None, gemm_status=Status.OK):
        self.config = config
        self.tamper = tamper
        self.gemm_status = gemm_status
        self.commands = []          # (op, tag) of every command taken, in order
        self.received = 0           # bytes taken in all
        self.a = None               # int8 A (int64), or block activations (xq, xd)
        self.a_shape = None
        self.dram = bytearray(config.dram_mib << 20)
        self._in = bytearray()
        self._out = bytearray()

    # --- Link ------------------------------------------------------------------------------

    def write(self, data):
        self.received += len(data)
        self._in += data
        while self._step():
            pass
        self._out += protocol.pack_header(Op.CREDIT | REPLY, self.received & 0xFFFFFFFF)

    def read_some(self, timeout, want=1):
        if not self._out:
            raise LinkTimeout(f"{self.name}: nothing to read")
        out, self._out = bytes(self._out), bytearray()
        return out

    def close(self):
        pass

    # --- the device --------------------------------------------------------------------------

    def _reply(self, op, *args, payload=b"", tag, status=Status.OK):
        arg0, arg1, arg2 = (*args, 0, 0, 0)[:3]
        data = protocol.frame(op | REPLY, arg0, arg1, arg2, payload,
                              link_bytes=self.config.link_bytes, status=status, tag=tag)
        if self.tamper:
            data = self.tamper(op, data)
        self._out += data

    def _step(self):
        lb = self.config.link_bytes
        buf = self._in
        if buf[:1] and buf[0] != MAGIC:            # idle fill (IDENTIFY's zeros) or garbage
            del buf[:lb]
            return True
        if len(buf) < HEADER_BYTES:
            return False
        head = protocol.unpack_header(bytes(buf[:HEADER_BYTES]))   # the host's are all valid
        end = HEADER_BYTES + head.length + (crc_word_bytes(lb) if head.length else 0)
        if len(buf) < end:
            return False
        body = bytes(buf[HEADER_BYTES:end])
        taken = self.received - len(buf) + HEADER_BYTES       # count once the header is in
        del buf[:end]
        assert not head.length or protocol.payload_ok(body, lb), "host sent a bad payload CRC"
        payload = body[:head.length]
        self.commands.append((head.op, head.tag))
        if head.op == Op.IDENTIFY:
            ident = self.config.identify_payload()
            self._reply(Op.IDENTIFY, len(ident), lb, taken, payload=ident, tag=head.tag)
        elif head.op == Op.LOAD_A:
            self._load_a(head, payload)
        elif head.op == Op.GEMM:
            self._gemm(head, payload)
        elif head.op == Op.WRITE_DRAM and self.dram:
            self._write_dram(head, payload)
        elif head.op == Op.GEMM_DRAM and self.dram:
            self._gemm_dram(head)
        elif head.op == Op.DRAM_CHECK and self.dram:
            self._dram_check(head)
        else:
            self._reply(head.op, head.arg0, tag=head.tag, status=Status.BAD_OPCODE)
        return True

    def _vectors(self, payload, count, size, total, k):
        """The (k, total) matrix from ``count`` tiles of ``size`` columns, k vectors each."""
        lb = self.config.link_bytes
        out = np.zeros((k, total), dtype=np.int8)
        pos = 0
        for t in range(count):
            width = min(size, total - t * size)
            for kk in range(k):
                out[kk, t * size:t * size + width] = np.frombuffer(
                    payload, dtype=np.int8, count=width, offset=pos)
                pos += padded(width, lb)
        assert pos == len(payload), (pos, len(payload))
        return out

    def _load_a(self, head, payload):
        n, k, blocks = head.arg0, head.arg1, head.arg2
        self.a = self.a_shape = None
        if blocks not in (0, 1) or (blocks and not self.config.block_formats):
            self._reply(Op.LOAD_A, n, tag=head.tag, status=Status.BAD_FORMAT)
        elif blocks and k % BLOCK:
            self._reply(Op.LOAD_A, n, tag=head.tag, status=Status.BAD_LENGTH)
        elif blocks:
            xq, xd = decode_load(payload, (n, k, 1), self.config)
            if inf_nan(xd):
                self._reply(Op.LOAD_A, n, tag=head.tag, status=Status.BAD_SCALE)
                return
            self.a, self.a_shape = (xq, xd), (n, k)
            self._reply(Op.LOAD_A, n, k, tag=head.tag)
        else:
            self.a = decode_load(payload, (n, k, 0), self.config).astype(np.int64)
            self.a_shape = (n, k)
            self._reply(Op.LOAD_A, n, k, tag=head.tag)

    def _write_dram(self, head, payload):
        address, size = head.arg0, head.length
        if head.arg1 or head.arg2:
            self._reply(Op.WRITE_DRAM, address, tag=head.tag, status=Status.BAD_CHECK)
        elif (address % DRAM_WORD_BYTES or not size or size % DRAM_WORD_BYTES
                or size > MAX_WRITE_DRAM or address + size > len(self.dram)):
            self._reply(Op.WRITE_DRAM, address, tag=head.tag, status=Status.BAD_LENGTH)
        else:
            self.dram[address:address + size] = payload
            self._reply(Op.WRITE_DRAM, address, tag=head.tag)

    def _stored(self, address, size):
        """The ``size`` bytes stored at ``address`` and their CRC word, or None for a range the
        device refuses (misaligned, empty, or past the end of the DRAM)."""
        end = address + size + crc_word_bytes(self.config.link_bytes)
        if address % DRAM_WORD_BYTES or not size or size % DRAM_WORD_BYTES or end > len(self.dram):
            return None
        return bytes(self.dram[address:end])

    def _dram_check(self, head):
        stored = None if head.arg2 else self._stored(head.arg0, head.arg1)
        if head.arg2:
            status = Status.BAD_CHECK
        elif stored is None:
            status = Status.BAD_LENGTH
        else:
            ok = protocol.payload_ok(stored, self.config.link_bytes)
            status = Status.OK if ok else Status.BAD_CRC
        self._reply(Op.DRAM_CHECK, head.arg0, tag=head.tag, status=status)

    def _gemm_dram(self, head):
        stored = self._stored(head.arg3, head.info)
        if stored is None:
            self._reply(Op.GEMM_DRAM, head.arg0, tag=head.tag, status=Status.BAD_LENGTH)
            return
        ok = protocol.payload_ok(stored, self.config.link_bytes)
        self._gemm(head, stored[:head.info], Status.OK if ok else Status.BAD_CRC,
                   op=Op.GEMM_DRAM)

    def _pair_sum_ok(self, n, code):
        """Whether a GEMM_DRAM of ``n`` rows in format ``code`` may set ``PAIR_SUM``."""
        return Feature.PAIR_SUM in self.config.features and code != 0 and n % 2 == 0

    def _argmax_ok(self, n, code, pair):
        """Whether a GEMM_DRAM of ``n`` rows in format ``code`` (``pair``: with ``PAIR_SUM``)
        may set ``ARGMAX``: its results are one row."""
        return Feature.ARGMAX in self.config.features and code != 0 and n == (2 if pair else 1)

    def _gemm(self, head, payload, status=None, op=Op.GEMM):
        cfg = self.config
        n, k, arg2 = head.arg0, head.arg1, head.arg2
        pair = op == Op.GEMM_DRAM and bool(arg2 & PAIR_SUM)
        argmax = op == Op.GEMM_DRAM and bool(arg2 & ARGMAX)
        flags = (PAIR_SUM if pair else 0) | (ARGMAX if argmax else 0)
        m, code = arg2 & 0xFFFFFF & ~flags, arg2 >> 24
        if (not 1 <= m <= 0xFFFF or (pair and not self._pair_sum_ok(n, code))
                or (argmax and not self._argmax_ok(n, code, pair))):
            self._reply(op, n, tag=head.tag, status=Status.BAD_LENGTH)
            return
        if self.a is None or self.a_shape != (n, k):
            self._reply(op, n, tag=head.tag, status=Status.NOT_LOADED)
            return
        blocks = isinstance(self.a, tuple)
        if not cfg.format_mask >> code & 1 or (code != 0) != blocks:
            self._reply(op, n, tag=head.tag, status=Status.BAD_FORMAT)
            return
        if blocks:
            raw = decode_gemm(payload, (n, k, m | code << 24), cfg)
            if block_scales_bad(raw, code):
                status = Status.BAD_SCALE if status is None else status
                c = np.zeros((n, m), dtype="<u4")        # void results
            else:
                c = block_gemm_reference(*self.a, raw, format_of(code)).astype("<u4")
        else:
            w = self._vectors(payload, -(-m // cfg.cols), cfg.cols, m, k).astype(np.int64)
            c = (self.a @ w).astype("<i4")
        tile_rows = cfg.rows
        if pair:        # rows 2t and 2t+1 of each row tile (rows is even: the pairs align)
            c, tile_rows = f32_add(c[0::2], c[1::2]).astype("<u4"), cfg.rows // 2
        if argmax:      # the one row's largest, the first of equal ones: (column, bits)
            column = int(np.argmax(f32_order_key(c[0].view("<u4"))))
            c = np.array([[column, c[0].view("<u4")[column]]], dtype="<u4")
        tiles = [(i, j, c[i:i + tile_rows, j:j + cfg.cols])
                 for j in range(0, m, cfg.cols) for i in range(0, c.shape[0], tile_rows)]
        if op == Op.GEMM_DRAM and n <= cfg.rows:      # a whole frame (`protocol`)
            tiles = [(0, 0, c)]
        for i, j, block in tiles:
            rows = b"".join(protocol.pad_to_words(r[c0:c0 + cfg.cols].tobytes(), cfg.link_bytes)
                            for c0 in range(0, block.shape[1], cfg.cols) for r in block)
            self._reply(Op.RESULT, i // tile_rows, j // cfg.cols,
                        block.shape[0] | block.shape[1] << 16, payload=rows, tag=head.tag)
        self._reply(Op.GEMM, 1234, 0, m, tag=head.tag,
                    status=self.gemm_status if status is None else status)
