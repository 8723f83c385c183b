"""tier2.podclient: framing in any split, keep-alive reuse, stale connections, failures."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from control.embedded import free_port
from tier2.podclient import PodConnector, PodLost, PodResponse, PodUnreached, request_head

_CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
_EVENTS = [b'data: {"n": %d}\n\n' % i for i in range(20)]


def _chunked(pieces: list[bytes], ext: bool = False) -> bytes:
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(p), b";x=1" if ext else b"", p) for p in pieces)
    return out + b"0\r\n\r\n"


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = self.paused = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def _feed(answer: bytes, splits: list[int]) -> tuple[PodResponse, list[bytes]]:
    loop = asyncio.get_running_loop()
    resp = PodResponse("pod:1", loop)
    resp.connection_made(_Transport())  # type: ignore[arg-type]
    resp.send(b"request")
    got: list[bytes] = []
    resp.attach(got.append)
    pos = 0
    for cut in [*sorted(splits), len(answer)]:
        if cut > pos:
            resp.data_received(answer[pos:cut])
            pos = cut
    return resp, got


@pytest.mark.parametrize("seed", range(30))
async def test_chunked_body_comes_out_whole_in_any_split(seed: int) -> None:
    rng = random.Random(seed)
    body = _CHUNKED_HEAD + _chunked(_EVENTS, ext=seed % 2 == 1)
    splits = rng.sample(range(1, len(body)), rng.randint(1, 40))
    resp, got = _feed(body, splits)
    assert b"".join(got) == b"".join(_EVENTS)
    assert resp.done and resp.reusable and resp.status == 200


async def test_every_byte_alone() -> None:
    body = _CHUNKED_HEAD + _chunked(_EVENTS[:3])
    resp, got = _feed(body, list(range(1, len(body))))
    assert b"".join(got) == b"".join(_EVENTS[:3]) and resp.done


@pytest.mark.parametrize(
    ("answer", "body", "done", "reusable"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello", True, True),
        (
            b"HTTP/1.1 400 Bad\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            b"{}",
            True,
            False,
        ),
        (
            b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n",
            b"data: x\n\n",
            False,
            False,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"", True, True),
        (_CHUNKED_HEAD + b"3\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n", b"abc", True, True),
    ],
)
async def test_framings(answer: bytes, body: bytes, done: bool, reusable: bool) -> None:
    resp, got = _feed(answer, [len(answer) // 2])
    assert b"".join(got) == body
    assert resp.done is done and resp.reusable is reusable


async def test_bytes_after_the_end_spoil_the_connection() -> None:
    resp, got = _feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", [])
    assert got == [b"ok"] and resp.done and not resp.reusable


async def test_a_body_ending_with_the_connection_ends_cleanly() -> None:
    resp, got = _feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc", [])
    before = (resp.done, list(got))
    resp.connection_lost(None)
    assert before == (False, [b"abc"])
    assert resp.done and not resp.reusable


@pytest.mark.parametrize(
    "answer",
    [
        b"SPDY/3 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        _CHUNKED_HEAD + b"zz\r\n",
    ],
)
async def test_malformed_answers_break_the_connection(answer: bytes) -> None:
    resp, _ = _feed(answer, [])
    assert resp.transport is not None and resp.transport.is_closing()
    with pytest.raises(PodLost, match="malformed"):
        await resp.wait(1.0)


async def test_connection_lost_before_and_after_the_first_byte() -> None:
    resp, _ = _feed(b"", [])
    resp.connection_lost(ConnectionResetError("reset"))
    with pytest.raises(PodUnreached, match="reset"):
        await resp.head(1.0)
    resp, _ = _feed(_CHUNKED_HEAD + b"3\r\nabc\r\n", [])
    resp.connection_lost(None)
    with pytest.raises(PodLost):
        await resp.wait(1.0)


async def test_pause_wakes_the_waiter_and_resume_reads_again() -> None:
    resp, _ = _feed(_CHUNKED_HEAD + b"3\r\nabc\r\n", [])
    waiting = asyncio.ensure_future(resp.wait(5.0))
    await asyncio.sleep(0)
    resp.pause()
    assert await asyncio.wait_for(waiting, 1.0) is False
    assert resp.transport is not None and resp.transport.paused  # type: ignore[attr-defined]
    resp.resume()
    assert not resp.transport.paused  # type: ignore[attr-defined]


async def test_silence_longer_than_idle_is_a_timeout() -> None:
    resp, _ = _feed(_CHUNKED_HEAD + b"3\r\nabc\r\n", [])
    with pytest.raises(TimeoutError):
        await resp.wait(0.05)


def test_request_head_sets_length_and_json_type() -> None:
    head = request_head("/v1/chat/completions", "10.0.0.1:8000", {"x-a": "b"}, 12)
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 10.0.0.1:8000\r\n")
    assert b"Content-Length: 12\r\n" in head and b"Content-Type: application/json" in head
    assert head.endswith(b"x-a: b\r\n\r\n")
    typed = request_head("/p", "h:1", {"Content-Type": "application/json; charset=utf-8"}, 0)
    assert typed.count(b"Content-Type") == 1


# --- against a real socket ---------------------------------------------------------------


class _Pod(asyncio.Protocol):
    """Answers every request with a 3-chunk stream; may close idle connections."""

    def __init__(self, server: _PodServer) -> None:
        self.server = server
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.server.connections += 1
        self.server.open.append(transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(rest) < length:
                return
            self.server.bodies.append(rest[:length])
            self.buf = rest[length:]
            self.transport.write(_CHUNKED_HEAD + _chunked([b"a", b"b", b"c"]))


class _PodServer:
    def __init__(self) -> None:
        self.connections = 0
        self.bodies: list[bytes] = []
        self.open: list[Any] = []


@pytest.fixture
async def pod() -> AsyncIterator[tuple[str, _PodServer]]:
    state = _PodServer()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Pod(state), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}", state
    server.close()


async def _roundtrip(conn: PodConnector, endpoint: str, body: bytes) -> bytes:
    resp = await conn.open(endpoint, request_head("/x", endpoint, {}, len(body)) + body, 5.0)
    try:
        return await resp.read_all(5.0)
    finally:
        conn.release(resp)


async def test_connections_are_reused_and_stale_ones_replaced(
    pod: tuple[str, _PodServer],
) -> None:
    endpoint, state = pod
    conn = PodConnector(connect_timeout_s=1.0)
    assert await _roundtrip(conn, endpoint, b"one") == b"abc"
    assert await _roundtrip(conn, endpoint, b"two") == b"abc"
    assert state.connections == 1
    for t in state.open:  # the pod's keep-alive timer closes the idle connection
        t.close()
    await asyncio.sleep(0.05)
    assert await _roundtrip(conn, endpoint, b"three") == b"abc"
    assert state.connections == 2 and state.bodies == [b"one", b"two", b"three"]
    conn.close()


async def test_a_refused_connection_is_unreached() -> None:
    conn = PodConnector(connect_timeout_s=1.0)
    with pytest.raises(PodUnreached):
        await conn.open(f"127.0.0.1:{free_port()}", b"x", 1.0)
    # the slot came back: the limit is not eaten by failures
    assert not conn._slots.locked()
