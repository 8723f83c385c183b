"""Streaming through the step loop's fast path: order, completeness, faults, disconnects."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import orjson
import pytest

from bench.vllmsim import tokenizer as tk
from bench.vllmsim.faults import FaultSpec
from bench.vllmsim.pods import start_pods
from bench.vllmsim.server import SimConfig
from bench.vllmsim.stream import StreamSink

MODEL = "sim-llama-8b"
_TABLE = tk._PSEUDO_TABLE


def _chat(max_tokens: int, text: str = "hello") -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }


async def _events(resp: aiohttp.ClientResponse) -> list[bytes]:
    """The ``data:`` payloads of an SSE body, in order (read line by line)."""
    out: list[bytes] = []
    async for line in resp.content:
        if line.startswith(b"data: "):
            out.append(line[6:].rstrip(b"\n"))
    return out


def _contiguous_run(ids: list[int]) -> bool:
    """Pseudo output is a slice of one fixed table: any lost, repeated or swapped token
    breaks the slice."""
    start = ids[0]
    for off, tid in enumerate(_TABLE):
        if tid == start and _TABLE[off : off + len(ids)] == ids:
            return True
    return False


def _check_stream(events: list[bytes], n: int, *, one_token_per_event: bool) -> None:
    assert events[-1] == b"[DONE]"
    role, *chunks, usage = (orjson.loads(e) for e in events[:-1])
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == n
    rid = role["id"]
    texts = []
    for i, c in enumerate(chunks):
        assert c["id"] == rid
        choice = c["choices"][0]
        assert choice["finish_reason"] == ("length" if i == len(chunks) - 1 else None)
        texts.append(choice["delta"]["content"])
    if one_token_per_event:
        assert len(chunks) == n
        assert all(len(tk.encode(t)) == 1 for t in texts)
    ids = tk.encode("".join(texts))
    assert len(ids) == n
    assert _contiguous_run(ids)


async def test_fast_path_streams_every_token_in_order() -> None:
    async with await start_pods(SimConfig(speed=40), n=1) as pods:
        pod = pods[0]
        n = 150
        async with aiohttp.ClientSession(pods.urls[0]) as s:

            async def one(i: int) -> list[bytes]:
                async with s.post("/v1/chat/completions", json=_chat(n, f"q{i}")) as r:
                    assert r.status == 200
                    assert r.headers["Transfer-Encoding"] == "chunked"
                    return await _events(r)

            streams = await asyncio.gather(*(one(i) for i in range(24)))
            # keep-alive: the connections were reused with correct chunked framing
            again = await one(99)
        for events in [*streams, again]:
            _check_stream(events, n, one_token_per_event=True)
        stats = pod.runner.emission
        assert stats.fast_tokens == 25 * n
        assert stats.slow_tokens == 0 and stats.handovers == 0
        assert stats.tokens.count == 25 * n and stats.tokens.early == 0


async def test_completions_stream_and_http10_framing() -> None:
    async with await start_pods(SimConfig(speed=40), n=1) as pods:
        body = orjson.dumps(
            {"model": MODEL, "prompt": "Once", "max_tokens": 20, "stream": True, "ignore_eos": True}
        )
        host, port = pods[0].host, pods[0].port
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /v1/completions HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
        )
        raw = await reader.read()  # HTTP/1.0: no chunking, the server closes at the end
        writer.close()
        await writer.wait_closed()
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200") and b"chunked" not in head.lower()
        events = [e[6:] for e in payload.split(b"\n\n") if e.startswith(b"data: ")]
        assert events[-1] == b"[DONE]"
        chunks = [orjson.loads(e) for e in events[:-1]]
        assert len(chunks) == 20
        assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "length"
        ids = tk.encode("".join(c["choices"][0]["text"] for c in chunks))
        assert len(ids) == 20 and _contiguous_run(ids)


async def test_stall_fault_hands_the_stream_to_its_handler() -> None:
    faults = FaultSpec(stall_rate=1.0, stall_ms=150)
    async with await start_pods(SimConfig(speed=40, faults=faults), n=1) as pods:
        n = 60
        async with aiohttp.ClientSession(pods.urls[0]) as s:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            async with s.post("/v1/chat/completions", json=_chat(n)) as r:
                events = await _events(r)
            assert loop.time() - t0 >= 0.15
        # tokens made during the stall arrive merged, in order, none lost
        _check_stream(events, n, one_token_per_event=False)
        assert len(events) < n + 3
        stats = pods[0].runner.emission
        assert stats.handovers >= 1 and stats.slow_tokens > 0
        assert stats.fast_tokens + stats.slow_tokens == n


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(out)
        out += body[:size]
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


async def test_slow_reader_backpressure_keeps_the_stream_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    init = StreamSink.__init__

    def small_send_buffer(self: StreamSink, *args: Any) -> None:
        # a tiny kernel send buffer, so unread output piles up in the transport
        sock = args[1].get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        init(self, *args)

    monkeypatch.setattr(StreamSink, "__init__", small_send_buffer)
    async with await start_pods(SimConfig(speed=200), n=1) as pods:
        n = 3000
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny TCP window
        sock.setblocking(False)
        await loop.sock_connect(sock, (pods[0].host, pods[0].port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
        body = orjson.dumps(_chat(n))
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
        )
        await asyncio.sleep(0.5)  # do not read: the server's transport buffer fills up
        raw = await reader.read()
        writer.close()
        await writer.wait_closed()
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        events = [e[6:] for e in _dechunk(payload).split(b"\n\n") if e.startswith(b"data: ")]
        _check_stream(events, n, one_token_per_event=False)
        stats = pods[0].runner.emission
        assert stats.handovers >= 1 and stats.slow_tokens > 0
        assert stats.fast_tokens + stats.slow_tokens == n


async def test_disconnect_mid_stream_aborts_the_engine_request() -> None:
    async with await start_pods(SimConfig(speed=5), n=1) as pods:
        pod = pods[0]
        async with aiohttp.ClientSession(pods.urls[0]) as s:
            r = await s.post("/v1/chat/completions", json=_chat(4000))
            rid = ""
            got = 0
            async for line in r.content:
                if line.startswith(b"data: {"):
                    rid = orjson.loads(line[6:])["id"]
                    got += 1
                    if got == 4:  # the role chunk and three tokens
                        break
            assert rid in pod.engine.requests
            r.close()  # drop the connection mid-stream
        async with asyncio.timeout(5):
            while rid in pod.engine.requests:
                await asyncio.sleep(0.01)
        assert pod.metrics.success["abort"] == 1
        assert not pod.runner._sinks
        assert not pod.engine.has_work()


async def test_unary_request_waits_once_for_its_end() -> None:
    async with await start_pods(SimConfig(speed=40), n=1) as pods:
        body = {"model": MODEL, "prompt": "x", "max_tokens": 30, "ignore_eos": True}
        async with aiohttp.ClientSession(pods.urls[0]) as s:
            r = await s.post("/v1/completions", json=body)
            data = await r.json()
        assert data["usage"]["completion_tokens"] == 30
        assert len(tk.encode(data["choices"][0]["text"])) == 30
        assert pods[0].runner.emission.tokens.count == 0  # no stream, nothing measured


async def test_spin_lead_polls_but_never_releases_a_step_early() -> None:
    async with await start_pods(SimConfig(speed=2, spin_lead_ms=3.0), n=1) as pods:
        async with aiohttp.ClientSession(pods.urls[0]) as s:
            async with s.post("/v1/chat/completions", json=_chat(12)) as r:
                events = await _events(r)
        _check_stream(events, 12, one_token_per_event=True)
        stats = pods[0].runner.emission
        assert stats.tokens.count == 12 and stats.tokens.early == 0
        assert stats.step_starts.count == 12 and stats.step_starts.early == 0
