"""How the fuzzer (tests/cocotb_fuzz.py) judges the device's replies to a burst.

The replies of a burst are judged against the bytes the burst put on the wire, not against what
each frame was meant to be. Every complete header whose CRC holds is found in the burst's bytes
(`scan_headers`); a reply is matched to one by its tag (every header the fuzzer writes has a tag
of its own). Then:

* an OK LOAD_A or GEMM reply must answer a header that starts on a word boundary, whose payload
  (as long as its arguments say) and CRC word follow it on the wire, complete and intact; a
  GEMM's results must equal the model's for the A the device last loaded OK. Anything else is a
  *wrong result*: in particular an OK reply to a damaged frame (flipped, cut off, swallowed);
* every other reply is checked too (these are *anomalies*, also failures): a reply whose tag no
  valid header on the wire carries; an error status other than the one the header's checks
  give (`verdict`, mirroring rtl/header_check.py and the parser) or, for an accepted command,
  other than its payload gives (ABORTED if cut off, BAD_CRC, BAD_SCALE); a reply to a header that
  lies in the payload of one the device had taken or skipped by its length (payloads are not
  searched); and a header on a word boundary, outside every such payload, that got no reply.
"""

import collections

import numpy as np
from fuzz_model import (
    ACCEPT,
    Loaded,
    block_scales_bad,
    decode_gemm,
    decode_load,
    format_of,
    inf_nan,
    op_name,
    payload_bytes,
    scan_headers,
    status_name,
    verdict,
)

from systolica.host.block_formats import block_gemm_reference
from systolica.host.frames import result_tiles
from systolica.protocol import HEADER_BYTES, REPLY, Op, Status, crc_word_bytes, payload_ok
from systolica.sim.testbench import gemm_reference

__all__ = ["Judge"]


class Judge:
    """The judgement of replies, mixed into the fuzzer, which supplies ``cfg``, ``lb``,
    ``loaded`` (the A the device holds, a `Loaded` or None), ``figures`` (counts),
    ``wrong(message)`` and ``anomaly(message)`` (record a failure) and
    ``check_identify(frame, at)``."""

    def gemm_results(self, frames, tag, n, m, what):
        """The RESULT frames of an OK GEMM as an (n, m) array, or None (recorded wrong)."""
        cfg = self.cfg
        out = np.zeros((n, m), dtype=np.int64)
        seen = np.zeros((n, m), dtype=np.int64)
        for f in frames:
            if f.op != Op.RESULT or f.status or f.tag != tag or not f.payload_ok:
                self.wrong(f"{what}: a reply among its RESULTs: {f}")
                return None
            for i, j, block in result_tiles(f, cfg):
                rows, cols = block.shape
                if i * cfg.rows + rows > n or j * cfg.cols + cols > m:
                    self.wrong(f"{what}: RESULT {i},{j} of {rows}x{cols} outside {n}x{m}")
                    return None
                out[i * cfg.rows:i * cfg.rows + rows, j * cfg.cols:j * cfg.cols + cols] = block
                seen[i * cfg.rows:i * cfg.rows + rows, j * cfg.cols:j * cfg.cols + cols] += 1
        if not (seen == 1).all():
            self.wrong(f"{what}: RESULT tiles cover the output {np.unique(seen).tolist()} "
                        "times")
            return None
        return out

    def compare(self, out, want, what):
        if want.dtype == np.uint32:
            out = out.astype(np.uint32)
        else:
            want = want.astype(np.int64)
        self.figures["checked_gemms"] += 1
        if out.shape != want.shape or not np.array_equal(out, want):
            bad = np.argwhere(out != want)
            self.wrong(f"{what}: {len(bad)} results differ from the model, first at "
                        f"{bad[:3].tolist()}: got {out[tuple(bad[0])]}, want "
                        f"{want[tuple(bad[0])]}")


    def judge(self, burst, data, replies, base):
        """Check the replies to ``burst`` (see the module's docstring); ``data`` is what the
        device was sent from the burst's start to the fence's IDENTIFY."""
        lb = self.lb
        heads = scan_headers(data)
        by_tag = collections.defaultdict(list)
        for pos, h in heads:
            by_tag[h.tag].append((pos, h))
        groups = {}
        order = []
        for f in replies:
            if f.tag not in groups:
                groups[f.tag] = []
                order.append(f.tag)
            elif order[-1] != f.tag:
                self.anomaly(f"replies to tag {f.tag} interleaved with others: {f}")
            groups[f.tag].append(f)
        hunted_from = 0        # where the device hunts for a header after the last reply
        taker = ""             # the header whose payload reaches there
        answered = []          # (header position, end of what it took or skipped)
        last_pos = -1
        for tag in order:
            frames = groups[tag]
            final = frames[-1]
            piece = burst.piece_of(tag)
            meant = f"tag {tag} ({piece.kind}: {piece.what})" if piece else f"tag {tag}"
            ok_result = final.status == Status.OK and final.op in (Op.LOAD_A, Op.GEMM)
            places = [(p, h) for p, h in by_tag.get(tag, []) if p % lb == 0]
            if len(places) != 1:
                why = ("no header with a right CRC on a word boundary carries it"
                       if not places else f"{len(places)} headers carry it")
                say = self.wrong if ok_result else self.anomaly
                say(f"{meant}: {status_name(final.status)} reply {final} but {why}")
                continue
            pos, h = places[0]
            if pos < last_pos:
                self.anomaly(f"{meant}: answered after the header at {last_pos}, which comes "
                              f"later in the burst ({pos})")
            last_pos = pos
            if pos < hunted_from:
                self.anomaly(f"{meant}: {status_name(final.status)} reply to the header at {pos}, "
                              f"inside the payload (to {hunted_from}) of {taker}: a payload was "
                              "searched for headers")
            end = self._judge_one(meant, pos, h, frames, data, len(burst.data), base)
            answered.append((pos, end))
            if end > hunted_from:
                hunted_from = end
                taker = (f"the header at {pos} (tag {tag}, {op_name(h.op)}, length {h.length}, "
                         f"answered {status_name(final.status)})")
        # Every header on a word boundary outside what the answered ones took must be answered.
        done = {pos for pos, _ in answered}
        for pos, h in heads:
            if pos % lb or pos in done or any(p <= pos < e for p, e in answered):
                continue
            piece = burst.piece_of(h.tag)
            meant = f"tag {h.tag} ({piece.kind}: {piece.what})" if piece else f"tag {h.tag}"
            self.anomaly(f"{meant}: header at {pos} ({h}) got no reply, though no answered "
                          "header's payload covers it")

    def _judge_one(self, meant, pos, h, frames, data, cut, base):
        """Check one answered header's replies; returns the end of what the device took or
        skipped after it. The burst's bytes end at ``cut``; after them ``data`` holds the
        fence's zero word, which may or may not arrive before the idle abort."""
        cfg, lb = self.cfg, self.lb
        crc_bytes = crc_word_bytes(lb)
        final = frames[-1]
        results = frames[:-1]
        if final.op != h.op & ~REPLY:
            self.anomaly(f"{meant}: reply op 0x{final.op:02x} to a header of op 0x{h.op:02x}")
        v = verdict(h, cfg, self.loaded)
        status = Status(final.status) if final.status in set(Status) else final.status
        if v != ACCEPT:
            self.figures["headers_refused" if v else "identify_in_bursts"] += 1
            if results:
                self.anomaly(f"{meant}: {len(results)} replies before the last to a refused "
                              f"header: {results[0]}")
            if status != v:
                say = self.wrong if status == Status.OK and h.op in (Op.LOAD_A, Op.GEMM) \
                    else self.anomaly
                say(f"{meant}: header {h} answered {status!r}, its checks give {v!r} "
                    f"(loaded: {self._loaded_text()})")
            if h.op == Op.IDENTIFY and status == Status.OK:
                self.check_identify(final, base + pos)
            if h.length and h.length % lb == 0:
                return min(len(data), pos + HEADER_BYTES + h.length + crc_bytes)
            return pos + HEADER_BYTES
        size = payload_bytes(h.op, h.args, cfg)
        end = pos + HEADER_BYTES + size + crc_bytes
        body = data[pos + HEADER_BYTES:end]
        decoded = None
        if end > len(data):
            want, why = Status.ABORTED, "its payload was cut off by the burst's end"
        elif not payload_ok(body, lb):
            want, why = Status.BAD_CRC, "its payload's CRC word is wrong"
        else:
            if h.op == Op.LOAD_A:
                decoded = decode_load(body[:size], (h.arg0, h.arg1, h.arg2), cfg)
                bad_scale = h.arg2 and inf_nan(decoded[1])
            else:
                decoded = decode_gemm(body[:size], h.args, cfg)
                bad_scale = h.arg2 >> 24 and block_scales_bad(decoded, h.arg2 >> 24)
            want, why = ((Status.BAD_SCALE, "it holds an inf or NaN scale") if bad_scale
                         else (Status.OK, "it arrived whole"))
        if end > cut and want != Status.ABORTED:
            allowed = (want, Status.ABORTED)      # ended by the zero word, or aborted before it
            why += " (or it was cut off by the burst's end)"
        else:
            allowed = (want,)
        if status not in allowed:
            say = self.wrong if status == Status.OK else self.anomaly
            say(f"{meant}: {op_name(h.op)} {h.args} at {pos} answered "
                f"{status!r}, want {want!r}: {why}")
        if status != Status.OK:
            self.figures["payloads_refused"] += 1
            if results:
                self.figures["results_voided"] += 1
        if h.op == Op.LOAD_A:
            if results:
                self.anomaly(f"{meant}: LOAD_A answered with {len(results)} extra replies")
            self.loaded = None
            if status == want == Status.OK and decoded is not None:
                if final.args[:2] != (h.arg0, h.arg1):
                    self.wrong(f"{meant}: LOAD_A reply {final} for N, K = {h.args[:2]}")
                self.loaded = Loaded(h.arg0, h.arg1, bool(h.arg2), decoded)
        elif status == want == Status.OK and decoded is not None:
            n, _, arg2 = h.args
            m, code = arg2 & 0xFFFF, arg2 >> 24
            out = self.gemm_results(results, final.tag, n, m, meant)
            if out is not None:
                ld = self.loaded
                if code:
                    want_out = block_gemm_reference(ld.data[0], ld.data[1], decoded, format_of(code))
                else:
                    want_out = gemm_reference(ld.data, decoded)
                self.compare(out, want_out, f"{meant}: GEMM {h.args} at {pos}")
        return min(end, len(data))

    def _loaded_text(self):
        ld = self.loaded
        return "nothing" if ld is None else f"{ld.n}x{ld.k}{' blocks' if ld.blocks else ''}"
