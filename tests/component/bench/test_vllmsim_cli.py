"""``strata sim`` (``python -m bench.vllmsim``): flags, startup lines, clean exit."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import aiohttp
import pytest

from bench.vllmsim.cli import main


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no free port pair")


@pytest.mark.parametrize(
    "argv",
    [
        ["--faults", "5:error_rate=1", "--pods", "2"],
        ["--faults", "bogus=1"],
        ["--pods", "0"],
        ["--spin-ms", "-1"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    assert main(argv) == 2


@pytest.mark.e2e
async def test_serves_pods_and_exits_cleanly_on_sigterm() -> None:
    port = _free_port_pair()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.vllmsim",
        "--pods",
        "2",
        "--port",
        str(port),
        "--speed",
        "10",
        "--faults",
        "1:error_rate=1",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines = []
        async with asyncio.timeout(20):
            for _ in range(2):
                lines.append((await proc.stdout.readline()).decode())
        assert f"http://127.0.0.1:{port}" in lines[0]
        assert f"http://127.0.0.1:{port + 1}" in lines[1]
        body = {"model": "sim-llama-8b", "prompt": "hi", "max_tokens": 3}
        async with aiohttp.ClientSession() as s:
            r = await s.post(f"http://127.0.0.1:{port}/v1/completions", json=body)
            assert r.status == 200
            r = await s.post(f"http://127.0.0.1:{port + 1}/v1/completions", json=body)
            assert r.status == 500
            r = await s.get(f"http://127.0.0.1:{port}/metrics")
            assert "vllm:lora_requests_info" in await r.text()  # LoRA on by default
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
