"""The host's protocol session without any device (it does no I/O): the credit rule on what it
lets out, frame dispatch of what comes in, command tags, and the reply checks, against
hand-built v2 replies."""

import numpy as np
import pytest

from systolica.config import Config
from systolica.host.frames import CorruptReply, DeviceError, ProtocolError
from systolica.host.session import Session
from systolica.protocol import (
    HEADER_BYTES,
    IDENTIFY_PAD,
    REPLY,
    Op,
    Status,
    frame,
    pack_header,
    unpack_header,
)

CFG = Config(rows=2, cols=2, link_bytes=4, act_depth=64, max_k=64, rx_fifo_words=32)


def identify_reply(cfg, received, tag):
    payload = cfg.identify_payload()
    return frame(Op.IDENTIFY | REPLY, len(payload), cfg.link_bytes, received, payload,
                 link_bytes=cfg.link_bytes, tag=tag)


def credit(count):
    return pack_header(Op.CREDIT | REPLY, count)


def opened():
    session = Session()
    assert session.identify() == 1
    assert len(session.take()) == IDENTIFY_PAD
    # The device had counted 1000 bytes before our IDENTIFY header.
    session.feed(identify_reply(CFG, 1000 + HEADER_BYTES, tag=1))
    return session


def test_before_identify_only_the_identify_pad_may_go_out():
    session = Session()
    session.identify()
    session.send(bytes(100))
    sent = session.take()
    assert len(sent) == IDENTIFY_PAD and session.unsent == 100
    assert unpack_header(sent[:HEADER_BYTES]).tag == 1 and sent[HEADER_BYTES:] == bytes(32)
    assert session.take() == b""                     # no credit until IDENTIFY is answered


def test_identify_reply_sets_the_configuration_and_the_window():
    session = opened()
    frame = session.reply()
    assert Session.check(frame, Op.IDENTIFY, tag=1).config == CFG == session.config
    assert session.reply() is None
    assert session.credit.room() == CFG.rx_bytes - (IDENTIFY_PAD - HEADER_BYTES)


def test_take_keeps_to_the_credit_and_whole_words():
    session = opened()
    session.reply()
    session.send(bytes(1000))
    # 128 bytes of credit; the 32 pad bytes after IDENTIFY's header are still in flight.
    assert session.credit.room() == 96
    assert len(session.take(limit=94, unit=4)) == 92            # whole words only
    assert len(session.take(unit=4)) == 4 and session.take() == b""
    # The device has consumed the whole IDENTIFY pad and 40 bytes after it: 72 more may go.
    session.feed(credit(1000 + IDENTIFY_PAD + 40))
    assert session.reply() is None                   # CREDIT frames are not replies
    assert len(session.take(limit=1000, unit=4)) == 72
    assert session.unsent == 1000 - 96 - 72
    assert session.credit.max_in_flight == CFG.rx_bytes


def test_identify_behind_queued_bytes_is_refused():
    session = Session()
    session.send(b"x")
    with pytest.raises(ProtocolError, match="behind 1 unsent bytes"):
        session.identify()


@pytest.mark.parametrize(("last_tag", "want"), [
    (0, [1, 2, 3]),
    (253, [254, 255, 1, 2]),          # 0 is CREDIT's: never handed out
    (255, [1, 2]),
    (510, [1]),
])
def test_tags_run_1_to_255_in_turn(last_tag, want):
    session = Session(last_tag=last_tag)
    assert [session.next_tag() for _ in want] == want
    assert session.last_tag == want[-1]


def test_tags_over_a_long_run_are_never_0_and_each_comes_once_a_cycle():
    session = Session()
    tags = [session.next_tag() for _ in range(3 * 255)]
    assert tags == list(range(1, 256)) * 3
    assert session.identify() == 1                   # IDENTIFY takes the next one


@pytest.mark.parametrize(("frame_bytes", "op", "shape", "tag", "error", "match"), [
    (pack_header(Op.LOAD_A | REPLY, 2, 8, tag=5), Op.LOAD_A, (2, 8), 5, None, None),
    (pack_header(Op.LOAD_A | REPLY, 2, 8, tag=6), Op.LOAD_A, (2, 8), None, None, None),
    (pack_header(Op.LOAD_A | REPLY, 2, 8, tag=6), Op.LOAD_A, (2, 8), 5, ProtocolError,
     "LOAD_A sent with tag 5, got one with tag 6"),
    (pack_header(Op.LOAD_A | REPLY, 2, 8), Op.LOAD_A, None, 255, ProtocolError,
     "sent with tag 255, got one with tag 0"),
    (pack_header(Op.LOAD_A | REPLY, 2, 9, tag=5), Op.LOAD_A, (2, 8), 5, ProtocolError,
     r"says \(2, 9\)"),
    (pack_header(Op.GEMM | REPLY, 5, tag=5), Op.LOAD_A, None, 5, ProtocolError,
     "expected a LOAD_A"),
    (pack_header(Op.LOAD_A | REPLY, 3, status=Status.BAD_LENGTH, tag=5), Op.LOAD_A, None, 5,
     DeviceError, "BAD_LENGTH"),
    (pack_header(Op.LOAD_A | REPLY, 3, status=Status.BAD_CRC, tag=5), Op.LOAD_A, (3, 8), 5,
     DeviceError, "device rejected LOAD_A: BAD_CRC"),
    # Another command's error reply is first of all not this command's.
    (pack_header(Op.LOAD_A | REPLY, 3, status=Status.BAD_CRC, tag=4), Op.LOAD_A, None, 5,
     ProtocolError, "tag 5, got one with tag 4"),
    (pack_header(0x7E | REPLY, 1, status=Status.BAD_OPCODE, tag=5), 0x7E, None, 5, DeviceError,
     "opcode 0x7e: BAD_OPCODE"),
])
def test_reply_checks(frame_bytes, op, shape, tag, error, match):
    session = opened()
    session.reply()
    session.feed(frame_bytes)
    reply = session.reply()
    if error is None:
        assert Session.check(reply, op, shape=shape, tag=tag) is reply
    else:
        with pytest.raises(error, match=match):
            Session.check(reply, op, shape=shape, tag=tag)


def test_a_damaged_identify_reply_is_not_parsed_and_is_refused():
    session = Session()
    session.identify()
    session.take()
    reply = bytearray(identify_reply(CFG, HEADER_BYTES, tag=1))
    reply[HEADER_BYTES + 1] ^= 0x04                  # rows 2 → 6 on the way
    session.feed(bytes(reply))
    got = session.reply()
    assert session.config is None and got.config is None and not got.payload_ok
    assert session.reader.bad_payloads == 1
    with pytest.raises(CorruptReply, match="IDENTIFY reply of tag 1: payload CRC wrong"):
        Session.check(got, Op.IDENTIFY, tag=1)
    assert issubclass(CorruptReply, ProtocolError)


def result_frame(i, j, block, tag, lb=CFG.link_bytes):
    rows = b"".join(np.ascontiguousarray(r, dtype="<i4").tobytes() for r in block)
    return frame(Op.RESULT | REPLY, i, j, block.shape[0] | block.shape[1] << 16, rows,
                 link_bytes=lb, tag=tag)


def test_gemm_result_collects_tiles_then_the_cycles():
    session = opened()
    session.reply()
    block = np.array([[1, -2], [3, 4]], dtype="<i4")
    session.feed(result_frame(0, 0, block, tag=2)
                 + pack_header(Op.GEMM | REPLY, 77, 0, 2, tag=2))
    result = session.gemm_result(2, 2, 2)
    assert not result.add(session.reply())
    assert result.add(session.reply()) and result.cycles == 77
    np.testing.assert_array_equal(result.out, block)


def _damaged(data):
    data = bytearray(data)
    data[HEADER_BYTES + 2] ^= 0x80
    return bytes(data)


BLOCK = np.array([[5, 6], [7, 8]], dtype="<i4")


@pytest.mark.parametrize(("replies", "error", "match"), [
    ([result_frame(0, 0, BLOCK, tag=3)], ProtocolError,
     "reply with tag 3 during the GEMM sent with tag 2"),
    ([result_frame(0, 0, BLOCK, tag=2), pack_header(Op.GEMM | REPLY, 1, tag=3)], ProtocolError,
     "reply with tag 3 during the GEMM sent with tag 2"),
    ([_damaged(result_frame(0, 0, BLOCK, tag=2))], CorruptReply,
     r"RESULT \(0, 0\) of GEMM tag 2: payload CRC wrong"),
    # The weights arrived damaged: the RESULTs already sent are void.
    ([result_frame(0, 0, BLOCK, tag=2),
      pack_header(Op.GEMM | REPLY, 1, status=Status.BAD_CRC, tag=2)], DeviceError,
     "device rejected GEMM: BAD_CRC"),
    ([pack_header(Op.GEMM | REPLY, 2, status=Status.NOT_LOADED, tag=2)], DeviceError,
     "NOT_LOADED"),
    ([pack_header(Op.LOAD_A | REPLY, 2, 2, tag=2)], ProtocolError, "unexpected"),
    ([pack_header(Op.GEMM | REPLY, 1, tag=2)], ProtocolError, "did not cover the output"),
])
def test_gemm_result_refuses_what_does_not_answer_its_gemm(replies, error, match):
    session = opened()
    session.reply()
    session.feed(b"".join(replies))
    result = session.gemm_result(2, 2, 2)
    for _ in replies[:-1]:
        assert not result.add(session.reply())
    with pytest.raises(error, match=match):
        result.add(session.reply())


def test_an_error_reply_to_a_command_with_credit_s_opcode_is_a_reply_not_a_credit():
    """The device answers a host's command whose opcode is CREDIT's with BAD_OPCODE, tagged:
    that is a reply (the fuzzer sent one), not a count of consumed bytes."""
    session = opened()
    session.reply()
    room = session.credit.room()
    session.feed(pack_header(Op.CREDIT | REPLY, 0x12345678, status=Status.BAD_OPCODE, tag=7))
    reply = session.reply()
    assert (reply.op, reply.status, reply.tag) == (Op.CREDIT, Status.BAD_OPCODE, 7)
    assert session.credit.room() == room
