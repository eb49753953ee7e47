"""What a `Driver` counts: bytes each way, device cycles and GEMMs, and the recovery it did."""

import dataclasses

__all__ = ["DriverStats"]


@dataclasses.dataclass
class DriverStats:
    """What crossed the link and what the device reported, since the driver was opened."""

    bytes_out: int = 0           # host → device, all frames
    weight_bytes_out: int = 0    # host → device in GEMM frames (weights, headers, padding)
    act_bytes_out: int = 0       # host → device in LOAD_A frames
    dram_bytes_out: int = 0      # host → device in WRITE_DRAM frames (stored data, headers)
    bytes_in: int = 0            # device → host, all frames
    device_cycles: int = 0       # sum of the GEMM replies' cycle counts
    device_gemms: int = 0        # GEMM commands the device ran
    macs: int = 0                # multiply-accumulates those GEMMs did (N·K·M each)
    resyncs: int = 0             # conversations started over (`Driver.resync`)
    discarded_in: int = 0        # received bytes dropped by resyncs (unread or not a reply)
    retries: int = 0             # commands sent again after a damaged, lost or aborted exchange
    loads_skipped: int = 0       # LOAD_As not sent: the device held those activations already
    stale_replies: int = 0       # replies to earlier commands (a tag sent before), dropped
    fill_bytes_out: int = 0      # zero bytes a resync sent to complete a cut-off frame (a
                                 # device without an idle abort; `frame_fill`)
    line_framing_errors: int = 0  # the device's line error counts (UART framing errors and
    line_overruns: int = 0        # overruns since power-up) at its last IDENTIFY

    def utilization(self, config):
        if not self.device_cycles:
            return 0.0
        return self.macs / (config.rows * config.cols * self.device_cycles)
