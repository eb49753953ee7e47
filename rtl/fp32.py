"""Pipelined IEEE 754 binary32 arithmetic: binary16 and integer conversion (`fp32_convert`),
multiply (`fp32_multiply`), add (`fp32_add`); this module names them and says what they compute.

Every unit is a fixed-latency pipeline that takes one operation per cycle and never stalls: the
operands are sampled on each clock edge, and ``result`` shows the answer exactly `latency` cycles
later, when ``result_valid`` repeats the ``valid`` that came with the operands (``valid`` only
travels alongside; the datapath runs, on garbage, in invalid cycles too). ``latency`` is a
Python attribute of each instance.

Arithmetic (defined bit-exactly by `systolica.fp32_model`):

* Operands are finite binary32 values that are normal or ±0 — never subnormal, infinite or NaN
  (the device guarantees this; outside that domain results are unspecified).
* Results are rounded to nearest, ties to even; a rounded magnitude beyond the largest finite
  binary32 becomes ±inf, as in IEEE 754.
* **Flush to zero:** a result whose exact, unrounded magnitude is below ``2**-126`` is a zero with
  the sign IEEE would give it (also when it would have rounded up to ``2**-126``). An exact zero
  sum is +0 unless both addends are -0.

Pipeline stages are kept short for 100 MHz on an ECP5 (-6) with margin: the 24×24 multiply is
four 12×12 partial products (one DSP each) between registers, summed in the next stage (in
logic: products of 4 bits of one operand, summed in pairs, then the rest, a stage each); the
adder's alignment finds its sticky bit beside the shifter, not after it; a leading-zero count
shares its stage with only the coarse part (multiples of 4) of the normalizing shift, the last
0..3 places going to the rounding stage. Rounding is a 31-bit increment of the packed exponent
and fraction, whose carry also takes a significand overflow into the exponent and exponent 254
into infinity.
"""

from .fp32_add import Fp32Add
from .fp32_convert import Fp16ToFp32, IntToFp32
from .fp32_multiply import Fp32Multiply

__all__ = ["Fp16ToFp32", "Fp32Add", "Fp32Multiply", "IntToFp32"]
