"""systolica: an open FPGA accelerator for quantized LLM math."""

import time

__all__ = ["STARTED", "__version__"]

__version__ = "0.1.0"

# When the package was first imported (the earliest moment a command can see): commands report
# their start-up (imports, opening the model file and the device) from here.
STARTED = time.monotonic()
