"""systolica: an open FPGA accelerator for quantized LLM math."""

__all__ = ["__version__"]

__version__ = "0.1.0"
