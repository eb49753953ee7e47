"""The payload router's registers: where it is in a command's payload, and the registered flags
its decisions are taken from."""

from types import SimpleNamespace

from amaranth.hdl import Mux, Signal

from systolica import protocol

__all__ = ["group_shape", "router_registers", "set_left", "tile_shape"]


def _ceil_log2(value):
    return (value - 1).bit_length()


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
    r.store_left = Signal.like(cmd.words) if cfg.dram_mib else None   # words after this one
    # LOAD_A's packed activation vectors (`protocol.act_lanes`): the word's vector being sent,
    # and whether it is the word's last.
    r.lanes = protocol.act_lanes(cfg.rows, lb)
    r.lane = Signal(range(r.lanes)) if r.lanes > 1 else None
    r.lane_last = Signal() if r.lanes > 1 else None
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


def tile_shape(m, cfg, r, size, load):
    """Set up the tile that starts with ``left`` rows/cols to go (the router's next state:
    LOAD_A, GEMM or GEMM_GROUPS)."""
    lb = cfg.link_bytes
    blocks = bool(cfg.block_formats)
    more = r.more_rows if size == cfg.rows else r.more_cols
    valid = Mux(more, size, r.left)
    last_word = ((valid + lb - 1) >> _ceil_log2(lb)) - 1
    one_word = Mux(more, size <= lb, r.left_one_word)
    m.d.sync += [
        r.vec_len.eq(valid),
        r.vec_last_word.eq(last_word),
        r.word_idx.eq(0),
        r.word_last.eq(one_word),
        r.one_word.eq(one_word),
        r.step.eq(0),
        r.steps_left.eq(r.cmd.k_last),
        r.step_last.eq(r.cmd.k_last == 0),
        r.tile_last.eq(~more),
    ]
    if load and r.lane is not None:
        m.d.sync += [r.lane.eq(0), r.lane_last.eq(0)]
    if blocks and load:        # LOAD_A: a scale vector of 2 bytes a row first
        scale_last = ((2 * valid + lb - 1) >> _ceil_log2(lb)) - 1
        scale_one = Mux(more, 2 * size <= lb, r.left_one_scale_word)
        m.d.sync += [
            r.scale_last_word.eq(scale_last),
            r.scale_one_word.eq(scale_one),
            r.scale_phase.eq(r.cmd.blocks),
        ]
        with m.If(r.cmd.blocks):
            m.d.sync += r.word_last.eq(scale_one)
    if load:
        m.next = "LOAD_A"
    elif blocks:
        with m.If(r.cmd.fmt == protocol.Format.INT8):
            m.next = "GEMM"
        with m.Else():
            m.next = "GEMM_GROUPS"
    else:
        m.next = "GEMM"


def group_shape(m, cfg, r):
    """GEMM in a block format: the tile's groups of ``vec_len`` blocks, K / 32 of them (a
    state after `tile_shape`, from its registered ``vec_len``; timing)."""
    lb = cfg.link_bytes
    v, cmd = r.vec_len, r.cmd
    # Bytes of a group: 34, 18 or 20 a block, as shifts and adds (no multiplier).
    nbytes = Mux(cmd.fmt == protocol.Format.Q8_0, (v << 5) + (v << 1),
                 Mux(cmd.fmt == protocol.Format.Q4_0, (v << 4) + (v << 1),
                     (v << 4) + (v << 2)))
    last = ((nbytes + lb - 1) >> _ceil_log2(lb)) - 1
    m.d.sync += [
        r.group_last_word.eq(last), r.group_one_word.eq(last == 0), r.group_idx.eq(0),
        r.word_last.eq(last == 0),
        r.steps_left.eq(cmd.k_last >> 5),
        r.step_last.eq((cmd.k_last >> 5) == 0),
    ]
