"""`Config` rejects configurations the RTL cannot build, naming the bad argument."""

import pytest

from systolica.config import FORMAT_NAMES, Config

BLOCKS = dict(formats=FORMAT_NAMES, act_depth=256, max_k=64)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(rows=0), ValueError, "rows must be a positive integer"),
    (dict(rows=2.0), TypeError, "rows must be a positive integer"),
    (dict(cols=65), ValueError, "cols must be at most 64"),
    (dict(link_bytes=3), ValueError, "link_bytes must be a power of two"),
    (dict(multiplier="dsp"), ValueError, "multiplier must be"),
    (dict(buffer_piece_depth=1000), ValueError, "buffer_piece_depth must be 0 or a power"),
    (dict(formats=("q4_1",)), ValueError, "formats must be a tuple"),
    (dict(BLOCKS, rows=16, cols=18), ValueError, "rows \\+ cols <= 33"),
    (dict(BLOCKS, rows=1, cols=32), ValueError, "cols <= 24"),
    (dict(BLOCKS, rows=2, cols=6, scale_share=4), ValueError, "scale_share must divide cols"),
    (dict(BLOCKS, max_k=48), ValueError, "max_k must be a multiple of 32"),
    (dict(rx_fifo_words=8, link_bytes=4), ValueError, "at least 64 bytes"),
    (dict(lane_weights=4), ValueError, "lane_weights must be 8, 16 or 32"),
    (dict(scale_share=-1), ValueError, "scale_share must be a positive integer"),
    (dict(cols=6, readout_copies=4), ValueError, "readout_copies must divide cols=6"),
    (dict(readout_copies=0), ValueError, "readout_copies must be a positive integer"),
])
def test_bad_configuration_is_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        Config(**kwargs)


@pytest.mark.parametrize("kwargs", [
    dict(), dict(rows=1, cols=1), dict(formats=("int8",), rows=1, cols=64),
    dict(BLOCKS, rows=8, cols=16, scale_share=16), dict(BLOCKS, rows=9, cols=24, scale_share=8),
    dict(BLOCKS, rows=4, cols=16, lane_weights=8),
])
def test_good_configuration_is_accepted(kwargs):
    cfg = Config(**kwargs)
    default = Config()
    assert (cfg.rows, cfg.cols) == (kwargs.get("rows", default.rows),
                                    kwargs.get("cols", default.cols))
    assert cfg.block_period >= 32


@pytest.mark.parametrize(("rows", "cols", "share"), [
    (2, 16, 16), (8, 8, 4), (8, 16, 4), (4, 6, 6), (7, 5, 1), (1, 1, 1), (33, 4, 1), (16, 8, 2),
])
def test_default_scale_share_is_the_fewest_units_that_keep_up(rows, cols, share):
    """scale_share=0 (the default): the largest divisor of cols with rows * share <= 32, so the
    block GEMMs still run one block per 32 cycles (`Config.block_period`)."""
    cfg = Config(rows=rows, cols=cols, formats=("int8",)) if rows + cols > 33 else Config(
        rows=rows, cols=cols)
    assert cfg.scale_share == share
    assert cfg.block_period == 32 or rows > 32      # one row alone overfills a unit
