"""The host's protocol session without any device (it does no I/O): the credit rule on what it
lets out, frame dispatch of what comes in, and the reply checks, against hand-built replies."""

import numpy as np
import pytest

from systolica.config import Config
from systolica.host.frames import DeviceError, ProtocolError
from systolica.host.session import Session
from systolica.protocol import IDENTIFY_PAD, REPLY, Op, Status, pack_header, pad_to_words

CFG = Config(rows=2, cols=2, link_bytes=4, act_depth=64, max_k=64, rx_fifo_words=32)


def identify_reply(cfg, received):
    payload = cfg.identify_payload()
    return (pad_to_words(pack_header(Op.IDENTIFY | REPLY, len(payload), cfg.link_bytes,
                                     received), cfg.link_bytes)
            + pad_to_words(payload, cfg.link_bytes))


def credit(count, lb):
    return pad_to_words(pack_header(Op.CREDIT | REPLY, count), lb)


def opened():
    session = Session()
    session.identify()
    assert len(session.take()) == IDENTIFY_PAD
    session.feed(identify_reply(CFG, 1000 + 16))     # the device had counted 1000 bytes before
    return session


def test_before_identify_only_the_identify_pad_may_go_out():
    session = Session()
    session.identify()
    session.send(bytes(100))
    assert len(session.take()) == IDENTIFY_PAD and session.unsent == 100
    assert session.take() == b""                     # no credit until IDENTIFY is answered


def test_identify_reply_sets_the_configuration_and_the_window():
    session = opened()
    frame = session.reply()
    assert Session.check(frame, Op.IDENTIFY).config == CFG == session.config
    assert session.reply() is None
    assert session.credit.room() == CFG.rx_bytes - (IDENTIFY_PAD - 16)


def test_take_keeps_to_the_credit_and_whole_words():
    session = opened()
    session.reply()
    session.send(bytes(1000))
    # 128 bytes of credit; the 48 pad bytes after IDENTIFY's header are still in flight.
    assert session.credit.room() == 80
    assert len(session.take(limit=78, unit=4)) == 76            # whole words only
    assert len(session.take(unit=4)) == 4 and session.take() == b""
    # The device has consumed the whole IDENTIFY pad and 40 bytes after it: 88 more may go.
    session.feed(credit(1000 + IDENTIFY_PAD + 40, CFG.link_bytes))
    assert session.reply() is None                   # CREDIT frames are not replies
    assert len(session.take(limit=1000, unit=4)) == 88
    assert session.unsent == 1000 - 80 - 88
    assert session.credit.max_in_flight == CFG.rx_bytes


def test_identify_behind_queued_bytes_is_refused():
    session = Session()
    session.send(b"x")
    with pytest.raises(ProtocolError, match="behind 1 unsent bytes"):
        session.identify()


@pytest.mark.parametrize(("frame_bytes", "op", "shape", "error", "match"), [
    (pack_header(Op.LOAD_A | REPLY, 2, 8), Op.LOAD_A, (2, 8), None, None),
    (pack_header(Op.LOAD_A | REPLY, 2, 9), Op.LOAD_A, (2, 8), ProtocolError, r"says \(2, 9\)"),
    (pack_header(Op.GEMM | REPLY, 5), Op.LOAD_A, None, ProtocolError, "expected a LOAD_A"),
    (pack_header(Op.LOAD_A | REPLY, 3, status=Status.BAD_LENGTH), Op.LOAD_A, None, DeviceError,
     "BAD_LENGTH"),
])
def test_reply_checks(frame_bytes, op, shape, error, match):
    session = opened()
    session.reply()
    session.feed(pad_to_words(frame_bytes, CFG.link_bytes))
    frame = session.reply()
    if error is None:
        assert Session.check(frame, op, shape=shape) is frame
    else:
        with pytest.raises(error, match=match):
            Session.check(frame, op, shape=shape)


def test_gemm_result_collects_tiles_then_the_cycles():
    session = opened()
    session.reply()
    block = np.array([[1, -2], [3, 4]], dtype="<i4")
    tile = b"".join(pad_to_words(row.tobytes(), CFG.link_bytes) for row in block)
    session.feed(pad_to_words(pack_header(Op.RESULT | REPLY, 0, 0, 2 | 2 << 16), 4) + tile
                 + pad_to_words(pack_header(Op.GEMM | REPLY, 77, 0), 4))
    result = session.gemm_result(2, 2)
    assert not result.add(session.reply())
    assert result.add(session.reply()) and result.cycles == 77
    np.testing.assert_array_equal(result.out, block)
