"""The machine a figure was measured on, recorded with every benchmark figure: 2-core
machines of one kind differ about 3x (AVX2-only Zen 1 vs AVX-512 Zen 5), so a figure without
its CPU is not comparable."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from socseg_jax.runtime.host_devices import usable_cores

# The ISA flags that decide convolution speed (AVX-512 / BF16 / AMX paths of oneDNN and XLA).
ISA_FLAGS = ("sse4_2", "fma", "avx2", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
             "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def _cpuinfo_fields() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where it cannot be read)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not available on this platform
        return []


def cpu_info() -> dict[str, Any]:
    """CPU model, vendor, family/model/stepping, ISA flags, usable cores and load average
    (the load now: a busy machine makes every figure slower)."""
    fields = _cpuinfo_fields()
    flags = set(fields.get("flags", fields.get("Features", "")).split())
    return {
        "model_name": fields.get("model name") or platform.processor() or "unknown",
        "vendor": fields.get("vendor_id", "unknown"),
        "family_model_stepping": [fields.get(k, "?") for k in ("cpu family", "model",
                                                               "stepping")],
        "hypervisor": "hypervisor" in flags,
        "isa": {flag: flag in flags for flag in ISA_FLAGS},
        "cpus": usable_cores(),
        "load_average": _load_average(),
    }


def cpu_summary() -> str:
    """One line for a table: the model and its AVX2 / AVX-512 / BF16 / AMX flags."""
    info = cpu_info()
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if info["isa"][f]]
    return f"{info['model_name']} ({', '.join(isa)})" if isa else info["model_name"]
