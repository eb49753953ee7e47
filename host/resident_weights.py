"""The model's weights resident in the device's DRAM: placed, uploaded once, checked before use.

Every tensor a forward pass multiplies on the device (`llama.device_linears`: each layer's seven
projections and the LM head, SmolLM2's tied ``token_embd`` in Q8_0) is stored as the GEMM
payloads the driver would otherwise stream (`stored_weights.layout`: the GGUF blocks as in the
file, in column tiles, each payload followed by its CRC word), back to back from DRAM address 0
in the order a forward pass uses them (`place`; every tensor starts on a DRAM word, as `layout`
leaves it). A tensor is cut into pieces of whole column tiles of at most `MAX_PIECE_BYTES`
each (`lay_out`; the LM head's 30 MB into 29), one GEMM_DRAM each after one LOAD_A.

`upload` writes them with WRITE_DRAMs under a progress bar, then has the device check every
stored payload against its CRC word (DRAM_CHECK: the device reads the bytes back itself, nothing
but headers cross the link); a payload that fails is written once more, and if it fails again
the upload stops with `ResidentWeightsCorrupt`. From then on a linear sends 32-byte GEMM_DRAM
headers instead of its weights (`accel_linear.BlockLinear` with ``resident``).

`Upload` holds what the upload took: its bytes on the link, its wall time here, and what those
bytes would take on each catalog board's UART (`upload_lines`).
"""

import dataclasses
import time

from systolica.protocol import MAX_WRITE_DRAM

from .accel_linear import block_format
from .llama import device_linears
from .progress import Progress
from .stored_weights import StoredWeights, check_dram_range, layout

__all__ = ["LARGE_LINEAR_BYTES", "MAX_PIECE_BYTES", "Placement", "ResidentWeights",
           "ResidentWeightsCorrupt", "Upload", "lay_out", "place", "upload", "upload_lines"]

# At most this many bytes (payload and CRC word) in one stored piece: one WRITE_DRAM stores it,
# one DRAM_CHECK checks it, and one that fails is written again whole (a DRAM_CHECK sends
# nothing until it has read its piece: a megabyte keeps that wait, and a retry, short).
MAX_PIECE_BYTES = MAX_WRITE_DRAM

# A linear whose stored weights are at least this large counts as a large one in the DRAM read
# bandwidth figures: on SmolLM2 the three FFN projections (0.55 MB each in Q4_1) and the LM head
# (30 MB in Q8_0), not the attention projections (0.07-0.21 MB), whose GEMMs are short enough
# that the fixed costs around each (the first DRAM read's latency, the array's fill and drain,
# the last result frames) are a sizeable part of their cycles.
LARGE_LINEAR_BYTES = 1 << 19


class ResidentWeightsCorrupt(RuntimeError):
    """Stored weights failed their CRC check (DRAM_CHECK) after being written twice."""


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where each of the model's weight tensors sits in a device's DRAM.

    Attributes
    ----------
    config : Config
        The device's configuration (the payloads depend on it: `stored_weights`).
    weights : dict
        Tensor name → `stored_weights.StoredWeights`, in address order (a forward pass's).
    """

    config: object
    weights: dict

    @property
    def size(self):
        """Bytes from address 0 to the end of the last tensor."""
        return max((s.end for s in self.weights.values()), default=0)

    @property
    def pieces(self):
        """How many stored GEMM payloads (one a GEMM_DRAM command) there are."""
        return sum(len(s.pieces) for s in self.weights.values())

    def large(self):
        """The tensors whose stored weights take at least `LARGE_LINEAR_BYTES`."""
        return [name for name, s in self.weights.items() if s.size >= LARGE_LINEAR_BYTES]


def lay_out(config, raw, fmt, address):
    """`stored_weights.layout` of the GGUF blocks ``raw`` (M rows) in ``fmt`` (or of int8 W
    (K, M) for ``fmt`` "int8"), cut into pieces of whole column tiles (``config.cols`` output
    columns) of at most `MAX_PIECE_BYTES` each, back to back from ``address``: one
    `StoredWeights` (its pieces' ``c0`` count from the tensor's first column), and the bytes to
    write there."""
    if fmt == "int8":
        m = raw.shape[1]

        def columns(start, stop):
            return raw[:, start:stop]
    else:
        m = raw.shape[0]

        def columns(start, stop):
            return raw[start:stop]
    one = layout(config, columns(0, config.cols), fmt, address)[0]   # one column tile
    payload = sum(p.length for p in one.pieces)
    crc = one.size - payload                                         # its CRC word (padded)
    step = config.cols * max(1, (MAX_PIECE_BYTES - crc) // payload)
    pieces, images, at = [], [], address
    for c0 in range(0, m, step):
        stored, image = layout(config, columns(c0, c0 + step), fmt, at)
        pieces += [dataclasses.replace(p, c0=p.c0 + c0) for p in stored.pieces]
        images.append(image)
        at = stored.end
    return StoredWeights(stored.fmt, stored.k, m, address, at - address, tuple(pieces),
                         config), b"".join(images)


def _layout(config, model_file, name, address):
    return lay_out(config, model_file.raw(name), block_format(model_file, name), address)


def place(config, model_file):
    """The `Placement` of every tensor of `llama.device_linears` on a device of ``config``:
    their stored GEMM payloads back to back from address 0.

    ValueError for a device without DRAM, a tensor in a format the device does not carry, or
    a model that does not fit the device's DRAM (the message says how much it needs).
    """
    check_dram_range(config, 0, 0)
    dram = config.dram_mib << 20
    # Sized on a device of the same configuration with the most DRAM a configuration may have,
    # so that a model too large for this one is measured whole for the message; the payloads do
    # not depend on the DRAM's size.
    roomy = dataclasses.replace(config, dram_mib=2048)
    weights, at = {}, 0
    for name in device_linears(model_file):
        stored, _ = _layout(roomy, model_file, name, at)
        weights[name] = dataclasses.replace(stored, config=config)
        at = stored.end
    if at > dram:
        raise ValueError(f"the model's {len(weights)} weight tensors take {at / 1e6:.2f} MB of "
                         f"DRAM as stored GEMM payloads ({at} bytes), more than the device's "
                         f"{config.dram_mib} MiB ({dram} bytes); stream them instead")
    return Placement(config, weights)


@dataclasses.dataclass(frozen=True)
class Upload:
    """What an `upload` took.

    Attributes
    ----------
    stored_bytes : int
        Bytes written to the DRAM (the stored payloads with their CRC words).
    bytes_out, bytes_in : int
        Bytes on the link each way while writing (WRITE_DRAM frames and their replies).
    seconds : float
        Wall time of the writes on this link.
    check_seconds : float
        Wall time of the DRAM_CHECKs (and of any rewrite).
    rewritten : tuple
        Names of the tensors a piece of which failed its first check and was written again.
    link_name : str
        The link the upload went over.
    """

    stored_bytes: int
    bytes_out: int
    bytes_in: int
    seconds: float
    check_seconds: float
    rewritten: tuple
    link_name: str

    @property
    def link_bytes(self):
        return self.bytes_out + self.bytes_in


@dataclasses.dataclass(frozen=True)
class ResidentWeights:
    """The model's weights in a device's DRAM, checked: ``weights`` (tensor name →
    `StoredWeights`) is what `accel_linear.BlockLinear` takes as ``resident``."""

    placement: Placement
    upload: Upload

    @property
    def weights(self):
        return self.placement.weights


def upload(driver, model_file, placement=None, *, show_progress=None):
    """Store the model's weight tensors in the device's DRAM and check them; returns the
    `ResidentWeights`.

    Parameters
    ----------
    driver : Driver
        On a device with DRAM.
    model_file : ModelFile
    placement : Placement, optional
        Default `place` for the driver's device.
    show_progress : bool, optional
        Draw the progress bars on stderr (default: when it is a terminal).

    Raises ValueError (nothing sent) if the model does not fit; `ResidentWeightsCorrupt` if a
    stored payload fails its CRC check after being written a second time.
    """
    config = driver.config
    placement = placement or place(config, model_file)
    if placement.config != config:
        raise ValueError(f"the placement is for a device of {placement.config.label()}, this one "
                         f"is {config.label()}")
    stats = driver.stats
    before = (stats.bytes_out, stats.bytes_in)
    started = time.monotonic()
    bar = Progress("uploading the weights to the device's DRAM", placement.size,
                   enabled=show_progress)
    kept, driver.progress = driver.progress, bar.advance      # advanced by link bytes sent
    try:
        with bar:
            for name, stored in placement.weights.items():
                again, image = _layout(config, model_file, name, stored.address)
                if again != stored:
                    raise ValueError(f"{name}: its stored payloads are not those placed (was "
                                     "the placement made for another model file?)")
                driver.write_dram(stored.address, image)
    finally:
        driver.progress = kept
    seconds = time.monotonic() - started
    sent = (stats.bytes_out - before[0], stats.bytes_in - before[1])

    started = time.monotonic()
    rewritten = _check(driver, model_file, placement, show_progress)
    return ResidentWeights(placement, Upload(
        stored_bytes=placement.size, bytes_out=sent[0], bytes_in=sent[1], seconds=seconds,
        check_seconds=time.monotonic() - started, rewritten=tuple(rewritten),
        link_name=driver.link.name))


def _check(driver, model_file, placement, show_progress):
    """DRAM_CHECK every stored payload; write each that fails once more and check it again.
    Returns the names of the tensors written again; `ResidentWeightsCorrupt` if any still
    fails."""
    failed = {}
    with Progress("checking the stored weights (DRAM_CHECK)", placement.pieces,
                  enabled=show_progress) as bar:
        for name, stored in placement.weights.items():
            bad = driver.check_stored(stored)
            if bad:
                failed[name] = bad
            bar.advance(len(stored.pieces))
    still = []
    for name, pieces in failed.items():
        stored = placement.weights[name]
        _, image = _layout(placement.config, model_file, name, stored.address)
        for piece in pieces:
            start = piece.address - stored.address
            end = _next_piece_start(stored, piece) - stored.address
            driver.write_dram(piece.address, image[start:end])
            if not driver.check_dram(piece.address, piece.length):
                still.append(f"{name} (payload at DRAM 0x{piece.address:x}, {piece.length} "
                             "bytes and its CRC word)")
    if still:
        raise ResidentWeightsCorrupt(
            f"the device's DRAM does not keep what was written: {len(still)} stored payloads "
            f"failed their CRC check (DRAM_CHECK) after being written twice: "
            + "; ".join(still[:4]) + ("; ..." if len(still) > 4 else ""))
    return list(failed)


def _next_piece_start(stored, piece):
    """The first byte after ``piece``'s payload and CRC word: the next piece's address, or the
    end of the tensor's stored weights."""
    later = [p.address for p in stored.pieces if p.address > piece.address]
    return min(later, default=stored.end)


def upload_lines(resident, boards=None):
    """A few lines for a person: what is resident, what the upload took here and what its
    bytes would take on each catalog board's UART (8N1: ten bit times a byte)."""
    from systolica.boards.catalog import BOARDS
    from systolica.boards.report import link_bytes_per_s

    placement, up = resident.placement, resident.upload
    dram = placement.config.dram_mib
    lines = [
        f"weights resident in the device's DRAM: {len(placement.weights)} tensors, "
        f"{placement.size / 1e6:.2f} MB as {placement.pieces} stored GEMM payloads "
        f"(0x0-0x{placement.size:x} of {dram} MiB)",
        f"upload: {up.seconds:.1f} s on {up.link_name} ({up.bytes_out / 1e6:.2f} MB out, "
        f"{up.bytes_in / 1e3:.1f} kB in, {up.link_bytes / up.seconds / 1e6:.2f} MB/s); checked "
        f"by the device (DRAM_CHECK of every payload) in {up.check_seconds:.1f} s"
        + (f"; written again after a failed check: {', '.join(up.rewritten)}"
           if up.rewritten else ""),
    ]
    by_rate = {}
    for name in boards or BOARDS:
        by_rate.setdefault(BOARDS[name].baudrate, []).append(name)
    times = [f"{up.link_bytes / link_bytes_per_s(baud):,.0f} s at {baud / 1e6:g} Mbaud "
             f"({', '.join(names)})" for baud, names in sorted(by_rate.items())]
    lines.append(f"the same {up.link_bytes / 1e6:.2f} MB on the catalog boards' UARTs (8N1): "
                 + "; ".join(times))
    return lines
