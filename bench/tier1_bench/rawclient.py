"""A lean HTTP/1.1 keep-alive client for the closed loops: one asyncio Protocol per worker.

On this 2-core layout the load generator shares CPU 1 with the fake upstream, and
aiohttp's client costs about as much per request as the bare proxy under test, so with
it the reference proxy is bounded by CPU 1 rather than by its own core. This client
sends a pre-encoded request and parses only what it must: the status, Content-Length
or chunked framing, and (streaming) the count of SSE ``data: `` events in the decoded
body. No pipelining: each connection sends its next request when the answer is complete.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from bench.tier1_bench.stats import count_events

_HEAD_END = b"\r\n\r\n"


@dataclass
class Tally:
    ok: int = 0
    errors: int = 0
    events: int = 0
    first_error: str | None = None

    def error(self, what: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = what[:300]


def encode_request(url: str, headers: dict[str, str], body: bytes) -> tuple[str, int, bytes]:
    """(host, port, request bytes) of a keep-alive POST of ``body`` to ``url``."""
    u = urlsplit(url)
    host = u.hostname or "127.0.0.1"
    port = u.port or 80
    path = u.path + (f"?{u.query}" if u.query else "")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [
        f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length")
    ]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Worker(asyncio.Protocol):
    """One connection sending requests back to back while ``running()`` is true."""

    def __init__(
        self,
        request: bytes,
        tally: Tally,
        running: Callable[[], bool],
        done: asyncio.Future[None],
    ) -> None:
        self.request = request
        self.tally = tally
        self.running = running
        self.done = done
        self.transport: asyncio.Transport | None = None
        self._reset()

    def _reset(self) -> None:
        self.buf = b""
        self.head = True
        self.status = 0
        self.length = -1  # -1: chunked
        self.chunk_left = -1  # -1: expecting a size line
        self.tail = b""

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if self.running():
                self.tally.error(f"connection closed: {exc}")
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if self.head:
            end = buf.find(_HEAD_END)
            if end < 0:
                self.buf = buf
                return
            head = buf[:end].lower()
            self.status = int(head[9:12])
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                self.length = int(head[i + 17 : j if j >= 0 else len(head)])
            elif b"\r\ntransfer-encoding: chunked" in head:
                self.length = -1
            else:
                self.tally.error("answer with neither Content-Length nor chunked framing")
                self._close()
                return
            self.head = False
            buf = buf[end + 4 :]
        if self.length >= 0:
            if len(buf) >= self.length:
                self._finished()
            else:
                self.length -= len(buf)
                self.buf = b""
            return
        self._chunked(buf)

    # -- chunked bodies ---------------------------------------------------------------------
    def _chunked(self, buf: bytes) -> None:
        pos = 0
        n = len(buf)
        while True:
            if self.chunk_left == -1:  # a size line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(buf[pos:eol].split(b";", 1)[0], 16)
                pos = eol + 2
                self.chunk_left = size + 2 if size else -2
            elif self.chunk_left == -2:  # after the last chunk: trailers end at an empty line
                if buf.startswith(b"\r\n", pos) or buf.find(b"\r\n\r\n", pos) >= 0:
                    self._finished()
                    return
                break
            else:  # chunk data, then its CRLF
                if pos >= n:
                    break
                take = min(self.chunk_left, n - pos)
                data = max(0, min(take, self.chunk_left - 2))
                if data:
                    c, self.tail = count_events(self.tail, buf[pos : pos + data])
                    self.tally.events += c
                pos += take
                self.chunk_left -= take
                if self.chunk_left == 0:
                    self.chunk_left = -1
        self.buf = buf[pos:]

    def _finished(self) -> None:
        if self.status == 200:
            self.tally.ok += 1
        else:
            self.tally.error(f"HTTP {self.status}")
        self._reset()
        if self.running() and self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.request)
        else:
            self._close()

    def close(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)


def _same(worker: Worker) -> Worker:
    return worker


async def start_workers(
    url: str,
    headers: dict[str, str],
    body: bytes,
    concurrency: int,
    tally: Tally,
    running: Callable[[], bool],
) -> list[Worker]:
    """Open ``concurrency`` connections that keep sending until ``running()`` is false;
    each worker's ``done`` resolves when its connection has finished and closed."""
    host, port, request = encode_request(url, headers, body)
    loop = asyncio.get_running_loop()
    workers: list[Worker] = []
    for _ in range(concurrency):
        worker = Worker(request, tally, running, loop.create_future())
        await loop.create_connection(functools.partial(_same, worker), host, port)
        workers.append(worker)
    return workers
