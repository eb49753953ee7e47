"""Run-time selection as trees of 2:1 multiplexers: one value of many, one byte of a wide word."""

from amaranth.hdl import Mux

__all__ = ["byte_select", "mux_tree"]


def mux_tree(sel, values):
    """``values[sel]`` as a tree of 2:1 multiplexers, one level per bit of ``sel`` (what the
    ECP5's LUT4 + PFUMX + L6MUX21 build best; a ``Switch`` here cost twice the LUTs). Indices
    past the end give the last value."""
    level = list(values)
    for bit in range(len(sel)):
        level = [Mux(sel[bit], level[min(i + 1, len(level) - 1)], level[i])
                 for i in range(0, len(level), 2)]
    return level[0]


def byte_select(word, index):
    """Byte ``index`` of ``word``.

    Up to 64 bits this is ``word.word_select(index, 8)``. A wider word (a multiple of 32 bits)
    first picks its 32-bit piece with `mux_tree` on the index's upper bits, then the byte within
    it: the same selection, but Verilator evaluates it on machine words, where a variable shift
    of a value wider than 64 bits goes through its generic multi-word shift (the simulated
    board's 256-bit lane words and 16-byte link words spent a quarter of its time there). The
    boards' narrower words keep the plain form, so their netlists do not change.
    """
    width = len(word)
    if width <= 64:
        return word.word_select(index, 8)
    if width % 32:
        raise ValueError(f"a word wider than 64 bits must be whole 32-bit pieces, not {width} "
                         "bits")
    pieces = [word[32 * i:32 * i + 32] for i in range(width // 32)]
    return mux_tree(index[2:], pieces).word_select(index[:2], 8)
