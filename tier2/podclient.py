"""A lean HTTP/1.1 keep-alive client for streamed answers from pods.

Why not aiohttp's client here: relaying a stream through it wakes a coroutine for every
token (StreamReader feeds a future, the task steps, writes, awaits again); that plumbing
is most of the ~55 µs of CPU per token a bare aiohttp relay spends, and tier2 relays
every token of the pool (`strata bench tier2-relay`). Here the pod's connection is an
asyncio Protocol that de-frames the body in ``data_received`` and hands each piece to a
sink at once (tier2's proxy writes it to the client's transport there), so the proxy's
coroutine wakes only for the head, the first byte, backpressure and the end.

- `PodConnector.open` sends one request on an idle keep-alive connection to the pod
  (or a new one within ``connect_timeout_s``) and returns once the answer's head is in.
  A reused connection that the pod had closed meanwhile (its keep-alive timer; vLLM's
  is 5 s) fails before any byte: the request goes once more on a new connection, so a
  stale socket never counts as a dead pod.
- `PodResponse`: status and headers; `first` (the first body bytes), `attach(sink)`,
  `wait(idle_s)` (the end, or a pause for backpressure), `read_all(idle_s)`. Bodies may
  be chunked, sized or end with the connection. Idle time is measured from the last
  byte received, so a stream may run for hours as long as it keeps talking.
- Failures before any answer byte raise `PodUnreached`; after, `PodLost`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from typing import Final, cast

__all__ = ["PodConnector", "PodLost", "PodResponse", "PodUnreached", "request_head"]

_HEAD_END: Final = b"\r\n\r\n"
_MAX_HEAD: Final = 64 * 1024
_HEAD, _BODY, _DONE = 0, 1, 2
_LENGTH, _CHUNKED, _UNTIL_CLOSE = 0, 1, 2


class PodUnreached(ConnectionError):
    """The pod produced no byte of an answer: the request may go elsewhere."""


class PodLost(ConnectionError):
    """The pod broke the answer after some of it was received."""


def request_head(path: str, host: str, headers: Mapping[str, str], length: int) -> bytes:
    """The head of a keep-alive POST (``headers`` already without hop-by-hop ones)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {length}"]
    if "content-type" not in {k.lower() for k in headers}:
        lines.append("Content-Type: application/json")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


class PodResponse(asyncio.Protocol):
    """One connection to a pod, reused for one request after another."""

    def __init__(self, endpoint: str, loop: asyncio.AbstractEventLoop) -> None:
        self.endpoint = endpoint
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = True
        self.received = 0
        """Bytes of this answer received (head included)."""
        self.last_data = self.loop.time()
        self._state = _HEAD
        self._buf = b""
        self._framing = _UNTIL_CLOSE
        self._left = 0  # sized: body bytes to come; chunked: -1 size line, -2 trailers
        self._pending: list[bytes] = []
        self._sink: Callable[[bytes], None] | None = None
        self._error: BaseException | None = None
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self._state == _BODY and self._framing == _UNTIL_CLOSE:
            self._end()
        elif self._state != _DONE:
            what = f"{type(exc).__name__}: {exc}" if exc else "the pod closed the connection"
            self._error = (PodLost if self.received else PodUnreached)(what)
            self._wake()

    def data_received(self, data: bytes) -> None:
        self.last_data = self.loop.time()
        self.received += len(data)
        if self._state == _HEAD:
            buf = self._buf + data if self._buf else data
            end = buf.find(_HEAD_END)
            if end < 0:
                self._buf = buf
                if len(buf) > _MAX_HEAD:
                    self._fail(PodLost("the pod's answer head is too large"))
                return
            self._buf = b""
            try:
                self._parse_head(buf[:end])
            except ValueError as e:
                self._fail(PodLost(f"the pod's answer head is malformed: {e}"))
                return
            data = buf[end + 4 :]
            self._wake()
            if self._state == _DONE or not data:
                return
        if self._state == _BODY:
            self._body(data)
        elif self._state == _DONE and data:
            self.close()

    # -- parsing --------------------------------------------------------------------------
    def _parse_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(lines[0][:80])
        self.status = int(rest[:3])
        headers = self.headers
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(line[:80])
            headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        self.keep_alive = "close" not in connection and (
            version == "HTTP/1.1" or "keep-alive" in connection
        )
        self._state = _BODY
        if self.status in (204, 304) or 100 <= self.status < 200:
            self._framing, self._left = _LENGTH, 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._framing, self._left = _CHUNKED, -1
        elif "content-length" in headers:
            self._framing, self._left = _LENGTH, int(headers["content-length"])
        else:
            self._framing, self.keep_alive = _UNTIL_CLOSE, False
        if self._framing == _LENGTH and self._left == 0:
            self._end()

    def _body(self, data: bytes) -> None:
        if self._framing == _LENGTH:
            piece = data[: self._left]
            self._left -= len(piece)
            self._emit(piece)
            if self._left == 0:
                self._end()
                if len(data) > len(piece):
                    self.close()  # bytes after the answer: the connection cannot be reused
        elif self._framing == _UNTIL_CLOSE:
            self._emit(data)
        else:
            self._chunks(data)

    def _chunks(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pieces: list[bytes] = []
        pos, n = 0, len(buf)
        while pos < n:
            left = self._left
            if left == -1:  # a size line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                try:
                    size = int(buf[pos:eol].split(b";", 1)[0], 16)
                except ValueError:
                    self._fail(PodLost("the pod's chunked framing is malformed"))
                    return
                pos = eol + 2
                self._left = size + 2 if size else -2
            elif left == -2:  # after the last chunk: trailers end at an empty line
                if buf.startswith(b"\r\n", pos):
                    pos += 2
                else:
                    eol = buf.find(_HEAD_END, pos)
                    if eol < 0:
                        break
                    pos = eol + 4
                if pieces:
                    self._emit(b"".join(pieces))
                self._buf = b""
                self._end()
                if pos < n:
                    self.close()
                return
            else:  # chunk data, then its CRLF
                take = min(left, n - pos)
                data_len = min(take, left - 2)
                if data_len > 0:
                    pieces.append(buf[pos : pos + data_len])
                pos += take
                self._left = left - take
                if self._left == 0:
                    self._left = -1
        self._buf = buf[pos:]
        if pieces:
            self._emit(pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def _emit(self, piece: bytes) -> None:
        if not piece:
            return
        if self._sink is not None:
            self._sink(piece)
        else:
            self._pending.append(piece)
            if len(self._pending) == 1:
                self._wake()

    def _end(self) -> None:
        self._state = _DONE
        self._wake()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the proxy's side -------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def reusable(self) -> bool:
        return self.done and self.keep_alive and not self.closed and self._error is None

    def send(self, payload: bytes) -> None:
        self._reset()
        if self.transport is None or self.transport.is_closing():
            self._error = PodUnreached("the connection to the pod is closed")
            return
        self.transport.write(payload)

    async def _until(self, ready: Callable[[], bool], idle_s: float) -> None:
        """Wait until ``ready()``; raises the connection's error, or TimeoutError when
        the pod sends nothing for ``idle_s``."""
        while True:
            if ready():
                return
            if self._error is not None:
                raise self._error
            remaining = self.last_data + idle_s - self.loop.time()
            if remaining <= 0:
                raise TimeoutError
            waiter = self._waiter = self.loop.create_future()
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass  # bytes may have come meanwhile: look again
            finally:
                self._waiter = None

    async def head(self, idle_s: float) -> None:
        await self._until(lambda: self._state != _HEAD, idle_s)

    async def first(self, idle_s: float) -> bytes:
        """The body bytes received so far, waiting for at least one (b"" when the body
        ended empty); the next ones are buffered until `attach`."""
        await self._until(lambda: bool(self._pending) or self._state == _DONE, idle_s)
        out = b"".join(self._pending)
        self._pending.clear()
        return out

    async def read_all(self, idle_s: float) -> bytes:
        await self._until(lambda: self._state == _DONE, idle_s)
        out = b"".join(self._pending)
        self._pending.clear()
        return out

    def attach(self, sink: Callable[[bytes], None]) -> None:
        """From now on every body piece goes to ``sink`` as it is received."""
        self._sink = sink
        pending, self._pending = self._pending, []
        for piece in pending:
            sink(piece)

    def pause(self) -> None:
        """Stop reading from the pod (the client is slow) and wake `wait`."""
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
            self._wake()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            if self.transport is not None:
                self.transport.resume_reading()

    async def wait(self, idle_s: float) -> bool:
        """Until the body has ended (True) or the sink paused reading (False)."""
        await self._until(lambda: self._state == _DONE or self._paused, idle_s)
        return self._state == _DONE

    def close(self) -> None:
        """Drop the connection: a pod aborts the request it was serving on it."""
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()
            self.transport = None
        self.closed = True


class PodConnector:
    """Keep-alive connections to pods: at most ``limit`` in use, idle ones reused while
    younger than ``keepalive_s`` (below vLLM's 5 s, so the pod rarely closes first)."""

    def __init__(
        self,
        *,
        connect_timeout_s: float,
        limit: int = 1000,
        keepalive_s: float = 4.0,
        max_idle_per_endpoint: int = 256,
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        self.max_idle = max_idle_per_endpoint
        self._slots = asyncio.Semaphore(limit)
        self._idle: dict[str, deque[tuple[PodResponse, float]]] = {}

    def _reuse(self, endpoint: str, now: float) -> PodResponse | None:
        idle = self._idle.get(endpoint)
        while idle:
            conn, since = idle.pop()  # the most recent: the least likely to be closed
            if not conn.closed and now - since < self.keepalive_s:
                return conn
            conn.close()
        return None

    async def _connect(self, endpoint: str) -> PodResponse:
        loop = asyncio.get_running_loop()
        host, _, port = endpoint.rpartition(":")
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(lambda: PodResponse(endpoint, loop), host, int(port)),
                self.connect_timeout_s,
            )
        except TimeoutError:
            raise PodUnreached(f"no connection within {self.connect_timeout_s:g} s") from None
        except OSError as e:
            raise PodUnreached(f"{type(e).__name__}: {e}") from None
        return proto

    async def open(self, endpoint: str, payload: bytes, idle_s: float) -> PodResponse:
        """Send ``payload`` (head and body) to ``endpoint``; the response once its head is
        in. Raises PodUnreached, PodLost or TimeoutError (no head within ``idle_s``)."""
        await self._slots.acquire()
        try:
            loop = asyncio.get_running_loop()
            conn = self._reuse(endpoint, loop.time())
            if conn is not None:
                conn.send(payload)
                try:
                    await conn.head(idle_s)
                    return conn
                except PodUnreached:
                    conn.close()  # closed by the pod while idle: one more try, on a new one
                except BaseException:
                    conn.close()
                    raise
            conn = await self._connect(endpoint)
            conn.send(payload)
            try:
                await conn.head(idle_s)
            except BaseException:
                conn.close()
                raise
            return conn
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: PodResponse) -> None:
        """Give back a response's connection: kept for reuse only when its answer ended
        cleanly, closed otherwise (so the pod aborts whatever it was still doing)."""
        self._slots.release()
        if not conn.reusable:
            conn.close()
            return
        conn.resume()
        idle = self._idle.setdefault(conn.endpoint, deque())
        idle.append((conn, asyncio.get_running_loop().time()))
        while len(idle) > self.max_idle:
            idle.popleft()[0].close()

    def close(self) -> None:
        for idle in self._idle.values():
            for conn, _ in idle:
                conn.close()
        self._idle.clear()
