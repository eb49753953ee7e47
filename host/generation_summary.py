"""The figures `generate` collects per step (`StepFigures`: the prefill, then each decode token;
device cycles, link and DRAM bytes, where the wall time went, the float check's), and the few
lines `systolica generate` prints about a `GenerationResult` (`summary_lines`)."""

import dataclasses
import math

from .resident_weights import LARGE_LINEAR_BYTES

__all__ = ["StepFigures", "is_large_linear", "step_figures", "summary_lines"]


@dataclasses.dataclass
class StepFigures:
    """One step: the prefill (``kind`` "prefill", every prompt position) or one decode token.

    ``wall`` is the step on the generating path, and is ``link_seconds + linear_host_seconds +
    model_host_seconds``; the float check's own time is ``check_seconds``: it runs on a worker
    thread while the device computes the same step, so it is not part of ``wall``.
    """

    kind: str
    tokens: int                   # positions the step ran
    token_id: int                 # the token it chose
    wall: float
    link_seconds: float           # blocked in the link's write/read calls
    linear_host_seconds: float    # in the linears on the host, outside the link
    model_host_seconds: float     # the rest: the model's numpy outside the linears, sampling
    quantize_seconds: float = 0.0      # of linear_host_seconds: quantizing activations
    exact_seconds: float = 0.0         # the bit-exact reference check
    float_ref_seconds: float = 0.0     # BlockLinear's per-call float reference (if on)
    device_cycles: int = 0
    weight_bytes: int = 0         # host → device in GEMM frames
    act_bytes: int = 0            # host → device in LOAD_A frames
    result_bytes: int = 0         # device → host
    bytes_out: int = 0            # host → device, every frame (GEMM_DRAM headers too)
    device_gemms: int = 0
    dram_bytes: int = 0           # read from the device's DRAM by the GEMM_DRAMs
    dram_cycles: int = 0          # device cycles of the linears whose weights were resident
    large_dram_bytes: int = 0     # the same two for the large linears (`LARGE_LINEAR_BYTES`)
    large_dram_cycles: int = 0
    check_seconds: float = 0.0    # the float model's step (check only)
    cosine: float | None = None   # last-position logits vs the float model's
    argmax: int = -1              # the generating path's greedy token
    float_argmax: int | None = None
    device_argmax: bool = False   # the device found ``argmax``: the logits did not come back


def is_large_linear(record):
    """Whether ``record`` is of a linear whose stored weights take at least
    `LARGE_LINEAR_BYTES`."""
    return getattr(record, "stored_bytes", 0) >= LARGE_LINEAR_BYTES


def step_figures(kind, tokens, token, wall, *, linear_seconds, link_seconds, new_records, stats,
                 before):
    """The `StepFigures` of one step that took ``wall`` seconds, ``linear_seconds`` of them in
    the linears and ``link_seconds`` of those in the link; ``new_records`` are the step's
    `BlockLinear` records, ``stats`` the driver's `DriverStats` (None: no device) and ``before``
    a copy of them from before the step."""
    step = StepFigures(
        kind=kind, tokens=tokens, token_id=int(token), wall=wall, link_seconds=link_seconds,
        linear_host_seconds=max(linear_seconds - link_seconds, 0.0),
        model_host_seconds=max(wall - linear_seconds, 0.0),
        quantize_seconds=sum(getattr(r, "quantize_seconds", 0.0) for r in new_records),
        exact_seconds=sum(getattr(r, "exact_seconds", 0.0) for r in new_records),
        float_ref_seconds=sum(getattr(r, "float_seconds", 0.0) for r in new_records))
    resident = [r for r in new_records if getattr(r, "dram_bytes", 0)]
    step.dram_bytes = sum(r.dram_bytes for r in resident)
    step.dram_cycles = sum(r.device_cycles for r in resident)
    step.large_dram_bytes = sum(r.dram_bytes for r in resident if is_large_linear(r))
    step.large_dram_cycles = sum(r.device_cycles for r in resident if is_large_linear(r))
    if stats is not None:
        step.device_cycles = stats.device_cycles - before.device_cycles
        step.weight_bytes = stats.weight_bytes_out - before.weight_bytes_out
        step.act_bytes = stats.act_bytes_out - before.act_bytes_out
        step.result_bytes = stats.bytes_in - before.bytes_in
        step.bytes_out = stats.bytes_out - before.bytes_out
        step.device_gemms = stats.device_gemms - before.device_gemms
    return step


def _mean(values):
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def _resident_lines(result, steps, label, rate):
    """Link bytes, DRAM bytes and cycles of the steps (means), and the DRAM read bandwidth."""
    out, back = _mean(s.bytes_out for s in steps), _mean(s.result_bytes for s in steps)
    lines = [f"weights from the device's DRAM, {label}: link {(out + back) / 1e6:.3f} MB "
             f"({out / 1e6:.3f} MB out, {back / 1e6:.3f} MB in); DRAM read "
             f"{_mean(s.dram_bytes for s in steps) / 1e6:.2f} MB; "
             f"{_mean(s.device_cycles for s in steps):,.0f} device cycles"]
    if rate is None:
        return lines
    peak = rate.peak_bytes_per_cycle

    def bandwidth(dram, cycles):
        dram, cycles = sum(dram), sum(cycles)
        per_cycle = dram / cycles if cycles else math.nan
        return f"{per_cycle:.2f} B/cycle = {per_cycle / peak:.1%}"

    large = ", ".join(result.large_linears) or "none"
    lines.append(
        f"DRAM read bandwidth during the GEMMs ({label}; DRAM bytes / device cycles of the "
        f"GEMM_DRAMs, of the controller's peak of {peak:g} B/cycle, {rate.source}): "
        f"all linears {bandwidth((s.dram_bytes for s in steps), (s.dram_cycles for s in steps))}"
        f"; large linears ({large}: {LARGE_LINEAR_BYTES / 2**20:g} MiB or more stored) "
        f"{bandwidth((s.large_dram_bytes for s in steps), (s.large_dram_cycles for s in steps))}"
        f"; refresh leaves reads at most {rate.refresh_ceiling:.1%}")
    return lines


def summary_lines(result, dram_rate=None):
    """A few lines for a person: tokens, the float check, wall time per token, device figures;
    with resident weights, per decode token the link and DRAM bytes, and (given the device's
    `dram_rate.DramRate`) the DRAM read bandwidth the GEMMs achieved."""
    steps = result.steps
    prefill, decode = steps[0], steps[1:]
    lines = [f"{len(result.ids)} tokens generated after a prompt of {len(result.prompt_ids)} "
             f"(stopped: {result.stop_reason})", f"linears: {result.backend}"]
    if result.checked:
        cos = result.cosines
        if cos:
            listed = (" ".join(f"{c:.5f}" for c in cos) if len(cos) <= 16
                      else f"mean {_mean(cos):.5f}")
            lines.append(f"vs the float model: logits cosine per step (min {min(cos):.7f}, "
                         f"1 - min = {1 - min(cos):.1e}): {listed}")
        by_device = [s for s in steps if s.device_argmax and s.float_argmax is not None]
        if by_device:
            same = ["yes" if s.argmax == s.float_argmax else "no" for s in by_device]
            lines.append(
                f"vs the float model: the device found the greedy token itself (LM head "
                f"argmax), so no logits were sent and there is no cosine for "
                f"{'those' if cos else 'any'} {len(by_device)} steps; its token equals the "
                f"float model's greedy token at {same.count('yes')} of them"
                + (f" (per step: {' '.join(same)})" if len(same) <= 16 else ""))
        where = "none" if result.divergence is None else f"step {result.divergence}"
        lines.append(f"first step whose greedy token differs from the float model's: {where}")
    elif any(s.device_argmax for s in steps):
        lines.append("the device found the greedy token itself (LM head argmax): no logits "
                     "were sent")
    per_token = _mean(s.wall for s in decode)
    line = f"wall: prefill {prefill.wall:.2f} s ({prefill.tokens} tokens)"
    if decode:
        line += f", decode {per_token:.2f} s/token"
    check = sum(s.check_seconds for s in steps)
    if check:
        line += f"; float check {check:.2f} s (beside the device, on a second thread)"
    lines.append(line + f"; total {result.wall:.2f} s")
    if any(s.device_cycles for s in steps):
        d = decode or [prefill]
        lines.append(
            f"device: prefill {prefill.device_cycles} cycles, "
            f"{prefill.bytes_out} bytes out; per decode token "
            f"{_mean(s.device_cycles for s in d):.0f} cycles, "
            f"{_mean(s.bytes_out for s in d):.0f} bytes out, "
            f"{_mean(s.result_bytes for s in d):.0f} bytes in")
        if any(s.dram_bytes for s in steps):
            lines += _resident_lines(result, d, "per decode token" if decode else "in the prefill",
                                     dram_rate)
        link = sum(s.link_seconds for s in steps)
        host = sum(s.linear_host_seconds for s in steps)
        quantize = sum(s.quantize_seconds for s in steps)
        exact = sum(s.exact_seconds for s in steps)
        float_ref = sum(s.float_ref_seconds for s in steps)
        rest = sum(s.model_host_seconds for s in steps)
        lines.append(f"wall went to: the link {link:.2f} s; linears on the host {host:.2f} s "
                     f"(quantizing {quantize:.2f}, bit-exact check {exact:.2f}, "
                     + (f"float reference {float_ref:.2f}, " if float_ref > 0.01 else "")
                     + f"driver {max(host - quantize - exact - float_ref, 0):.2f}); "
                     f"the rest of the model {rest:.2f} s")
    if result.all_exact is not None:
        gemms = sum(s.device_gemms for s in steps)
        lines.append(f"all {gemms} device GEMMs bit-exact with the block model" if result.all_exact
                     else "NOT every device GEMM was bit-exact with the block model")
    return lines
