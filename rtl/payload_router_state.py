"""The payload router's registers: where it is in a command's payload, and the registered flags
its decisions are taken from."""

from types import SimpleNamespace

from amaranth.hdl import Signal

from systolica import protocol

__all__ = ["router_registers", "set_left"]


def router_registers(cfg, cmd):
    """The router's registers for configuration ``cfg``, as one namespace; ``cmd`` is the
    parser's command payload (the router keeps a copy)."""
    lb = cfg.link_bytes
    vec_bytes = max(cfg.rows, cfg.cols, 2 * cfg.rows if cfg.block_formats else 0)
    vec_words = protocol.words(vec_bytes, lb)
    r = SimpleNamespace(vec_words=vec_words)
    r.cmd = Signal.like(cmd)   # the command being routed
    # Payload vectors: up to `vec_words` words are gathered into one vector.
    r.vec = Signal(8 * lb * vec_words)
    r.vec_next = Signal.like(r.vec)
    r.vec_len = Signal(range(max(cfg.rows, cfg.cols) + 1))   # valid lanes in this tile's vectors
    r.vec_last_word = Signal(range(vec_words))
    r.word_idx = Signal(range(vec_words))
    r.step = Signal(range(cfg.max_k))                        # k within the tile
    r.left = Signal(17)                                      # rows/cols from this tile on
    # The registered flags the payload path decides on.
    r.word_last = Signal()
    r.one_word = Signal()          # this tile's vectors are one word each
    r.steps_left = Signal(range(cfg.max_k))
    r.step_last = Signal()
    r.tile_last = Signal()
    # ... and the ones a tile's shape is decided on, set with ``left`` (timing: ``left``
    # compared with the tile size, then the words a vector, was the iCEBreaker's critical
    # path): more than a tile of rows (cols) left; what is left fits one word (as int8
    # lanes, and as binary16 scale lanes).
    r.more_rows, r.more_cols = Signal(), Signal()
    r.left_one_word, r.left_one_scale_word = Signal(), Signal()
    # Block formats: LOAD_A's scale vectors (one before every 32 activation vectors) and
    # GEMM's groups of weight blocks.
    r.scale_phase = Signal()       # the vector being gathered is a scale vector
    r.scale_last_word = Signal(range(vec_words))
    r.scale_one_word = Signal()
    r.group_last_word = Signal(16)
    r.group_one_word = Signal()
    r.group_idx = Signal(16)
    r.bad_scale = Signal()
    r.bad_crc = Signal()           # the last payload's CRC word was wrong
    r.crc_left = Signal(2)         # words of the CRC word after this one
    r.scale_check = Signal()
    return r


def set_left(m, cfg, r, value, minus=0):
    """Set ``left`` to ``value - minus``, and the flags that go with it, each a compare of
    ``value`` with a constant (timing: a compare after the subtraction was the iCEBreaker's
    critical path)."""
    lb = cfg.link_bytes
    m.d.sync += [r.left.eq(value - minus), r.more_rows.eq(value > cfg.rows + minus),
                 r.more_cols.eq(value > cfg.cols + minus),
                 r.left_one_word.eq(value <= lb + minus),
                 r.left_one_scale_word.eq(value <= (lb + 2 * minus) // 2)]   # 2 bytes a row
