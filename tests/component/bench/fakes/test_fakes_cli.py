"""``python -m bench.fakes``: flags, the startup line, scripted defaults, clean exit."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from typing import Any

import aiohttp
import pytest

from bench.fakes.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        ["--name", "Bad-Name"],
        ["--name", "chunk"],
        ["--set", "stauts=500"],
        ["--set", "status"],
        ["--set", "status=abc"],
        ["--record", "-1"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    assert main(argv) == 2


def test_busy_port_exits_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["--port", str(busy.getsockname()[1])]) == 1


@pytest.mark.e2e
async def test_serves_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.fakes",
        "--name",
        "cli",
        "--port",
        "0",
        "--dialect",
        "azure",
        "--api-key",
        "k",
        "--deployment",
        "d1=gpt-4o",
        "--set",
        "chunks=2",
        "--record",
        "1",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("fake upstream cli (azure) listening on http://127.0.0.1:")
        url = line.split()[-1]
        body = {"messages": [{"role": "user", "content": "hi"}]}
        answer: dict[str, Any] = {}
        async with aiohttp.ClientSession(headers={"api-key": "k"}) as http:
            for _ in range(2):
                path = "/openai/deployments/d1/chat/completions?api-version=2024-10-21"
                async with http.post(url + path, json=body) as r:
                    answer = await r.json()
            assert answer["model"] == "gpt-4o"
            assert answer["choices"][0]["message"]["content"] == "This is"
            async with http.get(url + "/_fake/requests") as r:
                assert len(await r.json()) == 1  # --record 1 keeps the newest only
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_provider_dialect_flags_parse() -> None:
    from bench.fakes.cli import build_parser

    args = build_parser().parse_args(
        ["--dialect", "bedrock", "--aws-access-key-id", "AKIA1", "--aws-region", "eu-west-1"]
    )
    assert (args.dialect, args.aws_access_key_id, args.aws_region) == (
        "bedrock",
        "AKIA1",
        "eu-west-1",
    )
    args = build_parser().parse_args(["--dialect", "vertex", "--gcp-project", "p"])
    assert (args.gcp_project, args.gcp_location) == ("p", None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--dialect", "cohere"])
