"""What the sequencer tells the drain and the scale stage: tiles and 32-blocks as they are issued."""

from amaranth.lib import data

__all__ = ["BlockIssue", "TileMeta"]


def TileMeta(config):  # noqa: N802 (a layout factory reads like a type)
    """Where a tile of results belongs: its row and column tile, its valid rows and columns,
    and whether it is the GEMM's last."""
    return data.StructLayout({
        "row_tile": 16,
        "col_tile": 16,
        "rows": range(config.rows + 1),
        "cols": range(config.cols + 1),
        "end": 1,
    })


def BlockIssue(config):  # noqa: N802
    """A block-format GEMM's 32-block whose last step is issued: where its scales are (the
    weight banks' and the activation buffer's block entries), and whether it is the first or
    last block of its tile."""
    return data.StructLayout({
        "w_block": range(2 * (config.max_k // 32)),
        "a_block": range(config.act_depth // 32),
        "first": 1,
        "last": 1,
    })
