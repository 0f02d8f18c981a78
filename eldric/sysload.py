"""This host's load: CPU and memory from psutil, GPUs from NVML or nvidia-smi.

GPU figures are None where no GPU can be read; they are never made up. Reading GPUs costs a
subprocess, so it is sampled in the background (``refresh_gpu``) and /health only reads the
cached figures.
"""

from __future__ import annotations

import asyncio
import shutil

import psutil
import structlog

log = structlog.get_logger("eldric.sysload")

_QUERY = ["--query-gpu=utilization.gpu,memory.used,memory.total",
          "--format=csv,noheader,nounits"]


def parse_nvidia_smi(text: str) -> tuple[float | None, float | None]:
    """(mean GPU utilisation %, GPU memory used % over all GPUs) from nvidia-smi's CSV."""
    utils: list[float] = []
    used = total = 0.0
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        try:
            u, m_used, m_total = (float(p) for p in parts)
        except ValueError:  # "[N/A]" on some boards
            continue
        utils.append(u)
        used += m_used
        total += m_total
    if not utils:
        return None, None
    return round(sum(utils) / len(utils), 1), (round(100 * used / total, 1) if total else None)


class HostLoad:
    def __init__(self) -> None:
        psutil.cpu_percent(None)  # primes the counter; later calls measure since the last
        self.gpu_percent: float | None = None
        self.gpu_memory_percent: float | None = None
        self._nvml = _nvml_handles()

    def cpu_percent(self) -> float:
        return psutil.cpu_percent(None)

    def memory_percent(self) -> float:
        return psutil.virtual_memory().percent

    async def refresh_gpu(self) -> None:
        if self._nvml is not None:
            self.gpu_percent, self.gpu_memory_percent = _read_nvml(self._nvml)
            return
        exe = shutil.which("nvidia-smi")
        if exe is None:
            return
        try:
            proc = await asyncio.create_subprocess_exec(
                exe, *_QUERY, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=5)
        except (OSError, TimeoutError) as exc:
            log.debug("nvidia_smi_failed", error=repr(exc))
            return
        if proc.returncode == 0:
            self.gpu_percent, self.gpu_memory_percent = parse_nvidia_smi(out.decode())


def _nvml_handles():  # type: ignore[no-untyped-def]
    try:
        import pynvml  # optional: nvidia-ml-py

        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:
        return None


def _read_nvml(handles) -> tuple[float | None, float | None]:  # type: ignore[no-untyped-def]
    import pynvml

    try:
        utils = [pynvml.nvmlDeviceGetUtilizationRates(h).gpu for h in handles]
        mems = [pynvml.nvmlDeviceGetMemoryInfo(h) for h in handles]
    except Exception:
        return None, None
    if not utils:
        return None, None
    total = sum(m.total for m in mems)
    return (round(sum(utils) / len(utils), 1),
            round(100 * sum(m.used for m in mems) / total, 1) if total else None)
