"""GPU figures come from nvidia-smi when present (a fake one on PATH here), else null."""

from __future__ import annotations

import os
import stat

import aiohttp

from eldric.sysload import HostLoad, parse_nvidia_smi
from tests.conftest import run_eldric


def test_parse_nvidia_smi():
    assert parse_nvidia_smi("45, 2048, 8192\n15, 1024, 8192\n") == (30.0, 18.8)
    assert parse_nvidia_smi("[N/A], [N/A], [N/A]\n") == (None, None)
    assert parse_nvidia_smi("") == (None, None)


def _fake_smi(tmp_path, text: str):
    exe = tmp_path / "bin" / "nvidia-smi"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n"
                   'case "$*" in *--query-gpu=utilization.gpu,memory.used,memory.total*'
                   '--format=csv,noheader,nounits*) ;; *) exit 9;; esac\n'
                   f"printf '{text}'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe.parent)


async def test_worker_health_reports_gpu_from_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_smi(tmp_path, "80, 6000, 8000\\n"), prepend=os.pathsep)
    async with run_eldric("worker", tmp_path, backend="mock", port=0, bind="127.0.0.1") as urls:
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["worker"] + "/health") as r:
                load = (await r.json())["load"]
    assert load["gpu_percent"] == 80.0
    assert load["gpu_memory_percent"] == 75.0
    assert 0 <= load["cpu_percent"] <= 100 and 0 < load["memory_percent"] <= 100


async def test_no_gpu_means_null_not_zero(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    host = HostLoad()
    await host.refresh_gpu()
    assert host.gpu_percent is None and host.gpu_memory_percent is None
