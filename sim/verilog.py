"""Amaranth → Verilog for one configuration."""

from amaranth.back import verilog

from systolica.rtl.top import Accelerator

__all__ = ["TOPLEVEL", "generate"]

TOPLEVEL = "systolica_top"


def generate(config):
    """Verilog text of the whole accelerator (`Accelerator`) at ``config``."""
    top = Accelerator(config)
    return verilog.convert(top, name=TOPLEVEL, emit_src=False)
