"""SSE streaming with a fast path: the step loop writes each token's chunk itself.

A streaming handler prepares its :class:`aiohttp.web.StreamResponse` (headers sent,
chunked transfer encoding on HTTP/1.1), then attaches a :class:`StreamSink` to the pod's
runner and sleeps. When a step is planned, the runner asks the sink to
:meth:`~StreamSink.prepare` the token the step will give its request: the SSE chunk from
pre-built byte fragments, framed as an HTTP/1.1 chunk (``<hex length>\\r\\n<data>\\r\\n``,
exactly what aiohttp's ``StreamWriter`` writes). When the step ends, the runner has the
sink hand those bytes to the transport (:meth:`~StreamSink.write_prepared`) before the
engine even applies the step; :meth:`~StreamSink.emit` then covers any token that was
not prepared. All of it runs synchronously in the step loop, so no task wakes per
token. The handler wakes once at the end to write the usage chunk, ``[DONE]`` and the
terminating chunk through aiohttp (which keeps keep-alive intact).

The sink hands the stream back to its handler (the *slow path*, ordinary awaited
``resp.write`` calls) when the step loop must not do the work itself:

* backpressure: the transport's write buffer is above its high-water mark (where the
  transport pauses writing); the handler writes what is pending and awaits the drain,
  then returns to the fast path;
* a stall fault reaches its token: the handler sleeps ``stall_s``, then writes the
  tokens generated meanwhile in one chunk, as the slow path always did;
* the client went away (transport closing or a write error): the handler returns and
  the request is aborted in the engine.

Tokens stay in order because exactly one side writes at a time: the step loop writes
only while ``fast`` is set and clears it when it hands the stream over; the handler sets
it again only once it has written every token generated so far. Lateness (see
:mod:`bench.vllmsim.emission`) is recorded per token when its bytes reach the transport,
on either path; tokens held back by a stall fault count as slow tokens, not as lateness.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_writer import HttpVersion11

from bench.vllmsim import protocol, tokenizer
from bench.vllmsim.emission import EmissionStats
from bench.vllmsim.engine import Request, RequestStatus
from bench.vllmsim.runner import PodRunner

__all__ = ["StreamSink", "serve_stream", "text_of"]

_FINISHED = RequestStatus.FINISHED
_RUNNING = RequestStatus.RUNNING
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


def text_of(req: Request, pieces: list[str] | None, start: int, end: int) -> str:
    """The text of output tokens ``start:end`` (echo pieces, or pseudo words)."""
    if pieces is not None:
        return "".join(pieces[start:end])
    if end - start == 1:
        return tokenizer.pseudo_piece(req.planned[start])
    return tokenizer.decode_pseudo(req.planned[start:end])


_PIECE_JSON: dict[int, bytes] = {}
"""JSON string of each pseudo-word token (a vocabulary of about a hundred words)."""


def _piece_json(token_id: int) -> bytes:
    js = _PIECE_JSON.get(token_id)
    if js is None:
        js = orjson.dumps(tokenizer.pseudo_piece(token_id))
        if len(_PIECE_JSON) < 65536:
            _PIECE_JSON[token_id] = js
    return js


class StreamSink:
    """One streaming request's writer on the step loop (see the module docstring)."""

    __slots__ = (
        "_fut",
        "chunked",
        "closed",
        "fast",
        "fmt",
        "head",
        "high_water",
        "pending_target",
        "pieces",
        "prepared_at",
        "prepared_final",
        "sent",
        "stall_at",
        "stats",
        "template",
        "template_fixed",
        "transport",
        "writer",
    )

    def __init__(
        self,
        writer: AbstractStreamWriter,
        transport: asyncio.Transport,
        chunked: bool,
        fmt: protocol.StreamFormatter,
        pieces: list[str] | None,
        stall_at: int,
        stats: EmissionStats,
        head: bytes = b"",
    ) -> None:
        self.writer = writer
        self.transport = transport
        self.chunked = chunked
        self.high_water = transport.get_write_buffer_limits()[1]
        """Above this many buffered bytes the transport pauses writing (and so do we)."""
        self.fmt = fmt
        self.template, self.template_fixed = fmt.token_frame(chunked=chunked)
        self.pieces = pieces
        self.stall_at = stall_at
        self.stats = stats
        self.sent = 0
        self.fast = True
        self.closed = False
        self.pending_target = -1.0
        """``time.monotonic()`` due time of the oldest token the handler must write."""
        self.prepared_at = -1
        """Index of the token ``prepare`` formatted for the step in flight."""
        self.prepared_final = False
        self.head = head
        """An event still to precede the first token: vLLM sends a chat stream's role
        chunk with the first engine output, not on admission, so its first byte marks the
        end of prefill (tier2's ledger counts on that)."""
        self._fut: asyncio.Future[None] | None = None

    def _with_head(self, data: bytes) -> bytes:
        head = self.head
        if not head:
            return data
        return (b"%x\r\n%b\r\n" % (len(head), head) if self.chunked else head) + data

    # --- step loop side --------------------------------------------------------------

    def prepare(self, req: Request, finish_reason: str) -> bytes | None:
        k = req.num_output
        if not self.fast or self.sent != k or k == self.stall_at:
            return None  # the handler owns the stream, or the stall point: emit decides
        self.prepared_at = k
        self.prepared_final = bool(finish_reason)
        if finish_reason or self.pieces is not None:
            chunk = self.fmt.token_chunk(text_of(req, self.pieces, k, k + 1), finish_reason or None)
            data = b"%x\r\n%b\r\n" % (len(chunk), chunk) if self.chunked else chunk
        else:  # the common case: one pseudo word, pre-built frame
            js = _piece_json(req.planned[k])
            if self.chunked:
                data = self.template % (self.template_fixed + len(js), js)
            else:
                data = self.template % js
        return self._with_head(data)

    def write_prepared(self, req: Request, data: bytes, target: float) -> None:
        transport = self.transport
        if (
            not self.fast
            or self.sent != self.prepared_at
            or req.status is not _RUNNING
            or transport.is_closing()
            or transport.get_write_buffer_size() > self.high_water
        ):
            return  # emit sees the token after the engine step and decides
        try:
            transport.write(data)
        except Exception:  # a dead connection must not stop the step loop
            self.closed = True
            self._handover(target)
            return
        self.head = b""
        self.writer.output_size += len(data)
        self.sent += 1
        stats = self.stats
        stats.add(time.monotonic() - target)
        stats.fast_tokens += 1
        if self.prepared_final:
            self.fast = False
            self._wake()  # the handler runs after the engine step: usage, [DONE], end

    def emit(self, req: Request, target: float) -> None:
        sent = self.sent
        n = req.num_output
        if n <= sent:
            return  # nothing new (or already sent from the prepared bytes)
        if not self.fast:
            if self.pending_target < 0.0:
                self.pending_target = target
            self._wake()
            return
        transport = self.transport
        if (
            sent <= self.stall_at < n
            or transport.is_closing()
            or transport.get_write_buffer_size() > self.high_water
        ):
            self._handover(target)
            return
        done = req.status is _FINISHED
        if done or self.pieces is not None or n - sent != 1:
            chunk = self.fmt.token_chunk(
                text_of(req, self.pieces, sent, n), req.finish_reason if done else None
            )
            data = b"%x\r\n%b\r\n" % (len(chunk), chunk) if self.chunked else chunk
        else:  # the common case: one pseudo word, from the pre-built template
            js = _piece_json(req.planned[sent])
            if self.chunked:
                data = self.template % (self.template_fixed + len(js), js)
            else:
                data = self.template % js
        data = self._with_head(data)
        try:
            transport.write(data)
        except Exception:  # a dead connection must not stop the step loop
            self.closed = True
            self._handover(target)
            return
        self.head = b""
        self.writer.output_size += len(data)
        self.sent = n
        stats = self.stats
        stats.add(time.monotonic() - target, n - sent)
        stats.fast_tokens += n - sent
        if done:
            self.fast = False
            self._wake()

    def close(self) -> None:
        self.closed = True
        self.fast = False
        self._wake()

    def _handover(self, target: float) -> None:
        self.fast = False
        self.pending_target = target
        self.stats.handovers += 1
        self._wake()

    def _wake(self) -> None:
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_result(None)

    # --- handler side ----------------------------------------------------------------

    async def wait(self) -> None:
        """Sleep until the step loop hands the stream back (or it ends)."""
        if self.fast and not self.closed:
            self._fut = fut = asyncio.get_running_loop().create_future()
            try:
                await fut
            finally:
                self._fut = None


async def serve_stream(
    request: web.Request,
    runner: PodRunner,
    parsed: protocol.CompletionRequest,
    req: Request,
    pieces: list[str] | None,
    stall_s: float,
) -> web.StreamResponse:
    """Stream ``req`` as SSE; the caller aborts the engine request if it is unfinished."""
    resp = web.StreamResponse(headers=_SSE_HEADERS)
    if request.version >= HttpVersion11:
        resp.enable_chunked_encoding()
    writer = await resp.prepare(request)  # sends the headers now (no buffering)
    transport = request.transport
    if writer is None or transport is None or transport.is_closing():
        return resp
    fmt = protocol.StreamFormatter(
        chat=parsed.chat, request_id=req.request_id, created=int(time.time()), model=parsed.model
    )
    stats = runner.emission
    stall_at = req.target_len // 2 if stall_s else -1
    head = fmt.role_chunk() if parsed.chat else b""
    sink = StreamSink(writer, transport, resp.chunked, fmt, pieces, stall_at, stats, head)
    sink.fast = False  # the handler writes whatever was generated before the sink existed
    runner.attach(req.request_id, sink)
    try:
        while True:
            if sink.closed or transport.is_closing():
                return resp  # client gone: aiohttp's write_eof fails quietly, caller aborts
            n = req.num_output
            if n > sink.sent:
                await _write_pending(resp, sink, req, n, stall_s, stats)
                continue  # more may have come while we awaited
            if req.status is _FINISHED:
                break
            if transport.get_write_buffer_size() > sink.high_water:
                await writer.drain()  # backpressure: wait for the client, then resume
                if transport.get_write_buffer_size() > sink.high_water:
                    await asyncio.sleep(0.005)  # not paused by the transport: poll gently
                continue
            sink.fast = True
            sink.pending_target = -1.0
            await sink.wait()
    finally:
        runner.detach(req.request_id)
    tail = b""
    if parsed.include_usage:
        usage = protocol.usage_dict(req.num_prompt_tokens, req.num_output, req.num_cached_tokens)
        tail = fmt.usage_chunk(usage)
    await resp.write_eof(tail + fmt.done())
    return resp


async def _write_pending(
    resp: web.StreamResponse,
    sink: StreamSink,
    req: Request,
    n: int,
    stall_s: float,
    stats: EmissionStats,
) -> None:
    """Slow path: write tokens ``sink.sent:n`` through aiohttp (after a stall, if due)."""
    stalled = False
    if sink.sent <= sink.stall_at < n:
        sink.stall_at = -1
        stalled = True
        await asyncio.sleep(stall_s)
        n = req.num_output  # the engine kept generating while we stalled
    sent = sink.sent
    done = req.status is _FINISHED and n == req.num_output
    chunk = sink.fmt.token_chunk(
        text_of(req, sink.pieces, sent, n), req.finish_reason if done else None
    )
    target = sink.pending_target
    sink.pending_target = -1.0  # tokens emitted while we write start a new pending run
    head, sink.head = sink.head, b""
    await resp.write(head + chunk)
    sink.sent = n
    stats.slow_tokens += n - sent
    if not stalled and target >= 0.0:
        stats.add(time.monotonic() - target, n - sent)
