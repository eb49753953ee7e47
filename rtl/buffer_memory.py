"""A buffer of the GEMM engine: one write port, one read port, optionally cut into pieces whose
read data are registered before the read mux."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .block_ram import BlockRam

__all__ = ["BufferMemory"]


class BufferMemory(wiring.Component):
    """``depth`` words of ``shape``; ``r_data`` shows the word at ``r_addr`` `latency` cycles
    after the address (a read of a word in the cycle it is written is undefined).

    With ``piece_depth = 0`` this is one `BlockRam` read in one cycle (``latency = 1``). With
    ``piece_depth = P`` (a power of two) it is ``ceil(depth / P)`` registered `BlockRam` pieces
    of at most ``P`` words, the addressed one selected after its registered read data
    (``latency = 2``). That is for FPGAs whose block RAMs have a slow clock-to-out: an ECP5
    DP16KD takes 5.8 ns to show its data, so a deep memory that the synthesizer builds from RAMs
    all over the chip with a mux after them misses 100 MHz. P = 2048 matches the DP16KD's
    2048 × 9 mode, so each piece is a row of RAMs with no mux of its own, and on ECP5 each
    piece's register is the RAMs' own output register (see `BlockRam`).
    """

    def __init__(self, shape, depth, *, piece_depth=0):
        if piece_depth and (piece_depth & (piece_depth - 1)):
            raise ValueError(f"piece_depth must be 0 or a power of two, not {piece_depth}")
        self._shape, self._depth, self._piece_depth = shape, depth, piece_depth
        self.latency = 2 if piece_depth else 1
        super().__init__({
            "w_addr": In(range(depth)),
            "w_data": In(shape),
            "w_en": In(1),
            "r_addr": In(range(depth)),
            "r_data": Out(shape),
        })

    def elaborate(self, platform):
        m = Module()
        depth, piece = self._depth, self._piece_depth
        if not piece:
            m.submodules.ram = ram = BlockRam(self._shape, depth)
            m.d.comb += [ram.w_addr.eq(self.w_addr), ram.w_data.eq(self.w_data),
                         ram.w_en.eq(self.w_en), ram.r_addr.eq(self.r_addr),
                         self.r_data.eq(ram.r_data)]
            return m
        bits = piece.bit_length() - 1
        count = -(-depth // piece)
        pieces = []
        for i in range(count):
            m.submodules[f"piece_{i}"] = ram = BlockRam(
                self._shape, min(piece, depth - i * piece), registered=True)
            m.d.comb += [
                ram.w_addr.eq(self.w_addr[:bits]), ram.w_data.eq(self.w_data),
                ram.w_en.eq(self.w_en & (self.w_addr[bits:] == i)),
                ram.r_addr.eq(self.r_addr[:bits]),
            ]
            pieces.append(ram.r_data)
        if count == 1:
            m.d.comb += self.r_data.eq(pieces[0])
            return m
        # The piece number, delayed to the registered read data.
        which = Signal(range(count))
        which_held = Signal(range(count))
        m.d.sync += [which.eq(self.r_addr[bits:]), which_held.eq(which)]
        with m.Switch(which_held):
            for i, data in enumerate(pieces):
                with m.Case(i):
                    m.d.comb += self.r_data.eq(data)
        return m
