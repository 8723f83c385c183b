"""The load generator of `strata bench tier2-realtime`: chat conversations in dilated time.

:class:`Driver` sends each request of a :class:`~bench.tier2_bench.workloads.Workload` at
its model-time arrival (``t0 + arrival / speed`` on the wall clock), one connection per
request, and follows each answered turn with the conversation's next one carrying the
text the pod really streamed. Every request becomes a :class:`Sample` with model-time
stamps; :mod:`bench.tier2_bench.realtime` summarizes them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from bench.tier1_bench.stats import count_events
from bench.tier2_bench.workloads import Payload, Workload
from bench.vllmsim import tokenizer
from bench.vllmsim.des import RequestRecord, SimRequest
from common import jsonutil

__all__ = ["MODEL", "Driver", "Sample", "Window", "parse_response"]

MODEL = "sim-llama-8b"


@dataclass(slots=True)
class Sample:
    """One request as the client saw it; times in model seconds since the run began."""

    arrival: float
    send_lag: float = math.nan
    first_token: float = math.nan
    finish: float = math.nan
    token_times: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    cached_tokens: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class Window:
    """Model seconds: measure arrivals in [start, stop); the run ends by ``end``."""

    start: float
    stop: float
    end: float


class _Exchange(asyncio.Protocol):
    """One streamed request on its own connection (``Connection: close``).

    The client shares a core with tier2, so it does the least per read: keep the bytes
    and stamp the end of each SSE event (``\\n\\n``: chunk framing uses ``\\r\\n`` and
    an event starts with ``data:``, so the marker never straddles two events). Parsing
    waits for the end of the stream."""

    def __init__(self, request: bytes, now: Callable[[], float]) -> None:
        self.request, self.now = request, now
        self.reads: list[bytes] = []
        self.event_times: list[float] = []
        self.tail = b""
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.reads.append(data)
        n, self.tail = count_events(self.tail, data, b"\n\n")
        if n:
            self.event_times += [self.now()] * n

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


def parse_response(raw: bytes) -> tuple[int, list[bytes]]:
    """Status and SSE events (without the ``data: `` prefix) of a whole HTTP response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    if b"transfer-encoding: chunked" in head.lower():
        parts, pos = [], 0
        while (end := body.find(b"\r\n", pos)) > 0 and (size := int(body[pos:end], 16)):
            parts.append(body[end + 2 : end + 2 + size])
            pos = end + 4 + size
        body = b"".join(parts)
    events = [e[6:] for e in body.split(b"\n\n") if e.startswith(b"data: ")]
    return status, events


class Driver:
    """Sends the workload's requests at their (dilated) times and follows up each turn."""

    def __init__(
        self, url: str, workload: Workload, window: Window, speed: float, log: Callable[[str], None]
    ) -> None:
        u = urlsplit(url)
        self.host, self.port, self.path = u.hostname or "127.0.0.1", u.port or 80, u.path
        self.workload, self.window, self.speed, self.log = workload, window, speed, log
        self.samples: list[Sample] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.t0 = 0.0

    def now(self) -> float:
        """Model seconds since the start."""
        return (asyncio.get_running_loop().time() - self.t0) * self.speed

    def _spawn(self, req: SimRequest) -> None:
        task = asyncio.get_running_loop().create_task(self._one(req))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self) -> list[Sample]:
        w = self.window
        self.t0 = asyncio.get_running_loop().time()
        for req in self.workload.initial(w.end):
            self._spawn(req)
        next_log = 0.0
        while self.now() < w.end:
            waiting = sum(1 for s in self.samples if w.start <= s.arrival < w.stop and _open(s))
            if self.now() >= w.stop and waiting == 0:
                break
            if self.now() >= next_log:
                next_log += 60.0
                done = sum(1 for s in self.samples if not _open(s))
                self.log(
                    f"  model t={self.now():.0f} s: {len(self.samples)} sent, {done} done, "
                    f"{waiting} measured open"
                )
            await asyncio.sleep(0.1)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        return self.samples

    def _request(self, req: SimRequest, payload: Payload) -> bytes:
        body = jsonutil.dumps(
            {
                "model": MODEL,
                "messages": list(payload.messages),
                "max_tokens": req.max_tokens,
                "ignore_eos": req.ignore_eos,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\nx-strata-priority: critical\r\n\r\n"
        )
        return head.encode() + body

    async def _one(self, req: SimRequest) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self.t0 + req.arrival / self.speed - loop.time()))
        if not isinstance(req.payload, Payload):
            return
        sample = Sample(req.arrival, send_lag=self.now() - req.arrival)
        self.samples.append(sample)
        ex = _Exchange(self._request(req, req.payload), self.now)
        try:
            await loop.create_connection(lambda: ex, self.host, self.port)
            await ex.done
        except OSError as e:
            sample.error = type(e).__name__
            return
        except asyncio.CancelledError:
            _read_events(ex, sample, complete=False)  # the run ended: keep what came
            raise
        finally:
            if ex.transport is not None:
                ex.transport.abort()
        text = _read_events(ex, sample, complete=True)
        if text is None:
            return
        sample.finish = self.now()
        ids = tokenizer.encode("".join(text))
        rec = RequestRecord(
            req.request_id, 0, req.arrival, sample.first_token, sample.first_token,
            sample.finish, sample.prompt_tokens, len(ids), sample.cached_tokens, "length", 0,
            None, req.payload, ids,
        )  # fmt: skip
        nxt = self.workload.follow_up(rec)
        if nxt is not None and nxt.arrival < self.window.end:
            self._spawn(nxt)


def _read_events(ex: _Exchange, sample: Sample, *, complete: bool) -> str | None:
    """Record the stream's events on ``sample``; the answer's text, None on an error."""
    status, events = parse_response(b"".join(ex.reads))
    if status != 200:
        if complete or status:
            sample.error = f"HTTP {status}"
        return None
    ended = bool(events) and events[-1] == b"[DONE]"
    if complete and (not ended or len(events) != len(ex.event_times)):
        sample.error = "truncated stream"
        return None
    n = min(len(events), len(ex.event_times)) - ended
    timed = zip(events[:n], ex.event_times[:n], strict=True)
    return "".join(_record(jsonutil.loads(e), t, sample) for e, t in timed)


def _record(event: dict[str, Any], t: float, sample: Sample) -> str:
    """Note one parsed SSE event received at ``t`` on ``sample``; its content text."""
    usage = event.get("usage")
    if usage:
        sample.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        sample.cached_tokens = int(details.get("cached_tokens") or 0)
    text = "".join((c.get("delta") or {}).get("content") or "" for c in event.get("choices") or ())
    if text:
        if math.isnan(sample.first_token):
            sample.first_token = t
        sample.token_times.append(t)
    return text


def _open(s: Sample) -> bool:
    return math.isnan(s.finish) and not s.error
