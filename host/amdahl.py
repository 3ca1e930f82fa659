"""Amdahl's law for an offloaded call: the accelerator only speeds up the share of
the work it runs.

An end-to-end call ``C = A @ B`` on float32 data, offloaded, takes

    T_e2e = T_quantize + T_pack + T_link + T_acc + T_dequantize

where the host quantizes A and B to int8 (per-tensor scale), packs the stream
frames (:func:`accelgen.host.plan.build_plan`), moves the frames over a link
(input bytes to the accelerator, result bytes back: ``bytes / bandwidth``, counted
serially, no overlap with compute, no per-transfer latency), the accelerator runs
its job cycles at its clock, and the host turns the int32 results back into float.

Amdahl's form. Take the host-side share ``T_host`` (everything but ``T_acc``) as
the serial part that the accelerator cannot touch, and the software matmul ``T_sw``
(numpy float32 BLAS on this machine) as the part it takes over. Then

    p = T_sw / (T_sw + T_host)         accelerated fraction
    s = T_sw / T_acc                   speedup of the accelerated part (kernel)
    S = 1 / ((1 - p) + p / s)          achieved speedup = (T_sw + T_host) / T_e2e
    S_max = 1 / (1 - p)                Amdahl bound (an infinitely fast accelerator)

``S`` compares against the same call with the matmul done on the host. The plain
end-to-end figure against numpy alone (which needs no quantize, pack or transfer)
is ``T_sw / T_e2e``; both are reported.
"""

from dataclasses import dataclass

__all__ = ["Link", "links", "ASSUMED_MHZ", "amdahl_speedup", "offload"]

#: Clock used when no synthesis result gives an Fmax (stated wherever it is used).
ASSUMED_MHZ = 100.0


@dataclass(frozen=True)
class Link:
    """A host-accelerator link: name, effective bandwidth (bytes/s), where it comes from."""

    key: str
    name: str
    bytes_per_s: float
    basis: str

    def seconds(self, nbytes: int) -> float:
        return nbytes / self.bytes_per_s

    def to_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "bytes_per_s": self.bytes_per_s,
                "basis": self.basis}


def links(stream_bits: int, clock_mhz: float, clock_source: str) -> list:
    """The three links of the report, the on-chip DMA sized to the accelerator's stream."""
    dma = stream_bits // 8 * clock_mhz * 1e6
    return [
        Link("axi_dma", f"on-chip AXI DMA ({stream_bits}-bit @ {clock_mhz:g} MHz)", dma,
             f"one {stream_bits}-bit beat per cycle at the accelerator clock "
             f"({clock_source}); what a Zynq/LiteX DMA feeding the AXI4-Stream ports "
             f"delivers when memory keeps up"),
        Link("pcie3x4", "PCIe gen3 x4", 3.5e9,
             "~3.5 GB/s effective (8 GT/s x 4 lanes, 128b/130b coding, TLP overhead)"),
        Link("uart3m", "UART 3 Mbaud", 3e6 / 10,
             "3 Mbaud, 8N1 = 10 bits per byte: 300 kB/s (the board bridge's class of link)"),
    ]


def amdahl_speedup(p: float, s: float) -> float:
    """1 / ((1 - p) + p / s); ``s`` may be ``float('inf')``."""
    return 1.0 / ((1.0 - p) + (p / s if s != float("inf") else 0.0))


def offload(*, t_sw: float, t_quantize: float, t_pack: float, t_dequantize: float,
            t_acc: float, link: Link, input_bytes: int, output_bytes: int) -> dict:
    """Figures of one offloaded call over ``link`` (see the module docstring)."""
    t_link = link.seconds(input_bytes + output_bytes)
    t_host = t_quantize + t_pack + t_link + t_dequantize
    t_e2e = t_host + t_acc
    p = t_sw / (t_sw + t_host)
    s = t_sw / t_acc
    return {"link": link.key, "t_sw_s": t_sw, "t_quantize_s": t_quantize, "t_pack_s": t_pack,
            "t_link_s": t_link, "t_dequantize_s": t_dequantize, "t_host_s": t_host,
            "t_acc_s": t_acc, "t_e2e_s": t_e2e, "host_share": t_host / t_e2e,
            "accelerator_share": t_acc / t_e2e, "accelerated_fraction": p,
            "kernel_speedup": s, "achieved_speedup": amdahl_speedup(p, s),
            "amdahl_bound": 1.0 / (1.0 - p), "e2e_speedup_vs_numpy_f32": t_sw / t_e2e}
