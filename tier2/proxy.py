"""Stream one picked request through to its pod; the only module that awaits pods.

- The body goes on untouched; the answer streams back as it comes (no buffering of
  streams), with `x-gateway-destination-endpoint: host:port` (Envoy's inference
  extension header) naming the pod that served it. Streams go over tier2.podclient: the
  pod's bytes are written to the client from its connection's `data_received`, with no
  coroutine step per token (tier2 relays every token of the pool; `strata bench
  tier2-relay`: 87 -> 55 µs of CPU per token, what a bare aiohttp relay costs without
  picking or observing anything); unary answers over aiohttp's client.
- Until the first byte reaches the client, a connection failure (refused, reset,
  closed before an answer: a pod that died) marks the pod unreachable and the request
  moves to the next-best pod. After that, a broken pod ends the stream with an error
  event: bytes the client has seen cannot be taken back.
- The ledger hears the first byte (`first_byte`) and the end (`finish`, exactly once:
  success, error, or the client leaving), with the pod's reported cached prompt tokens
  and the generated text, so the prefix index learns what is really cached.
- A client that goes away cancels the request, waiting or in flight (DisconnectWatch),
  and the connection to the pod is closed, so vLLM aborts the work instead of
  finishing it for nobody.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any, Final, Literal, Protocol, TypeVar

import aiohttp
from aiohttp import HttpVersion11, web

from common import jsonutil
from common.clock import Clock
from common.config import Pool
from common.errors import GatewayError, NotFound, Unavailable
from tier2.admission import Admission, Overflow
from tier2.datalayer.store import EndpointStore
from tier2.datalayer.types import EndpointState
from tier2.http.observe import Outcome, StreamObserver, unary_outcome
from tier2.http.parse import InferenceRequest
from tier2.metrics import Tier2Metrics
from tier2.picker import PickerStats
from tier2.podclient import PodConnector, PodLost, PodResponse, PodUnreached, request_head
from tier2.runtime import Tier2Runtime
from tier2.scheduling.framework import NoEndpoint
from tier2.scheduling.types import PickRequest, Priority
from tier2.settings import Tier2Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

DESTINATION_HEADER: Final = "x-gateway-destination-endpoint"
_PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
# failures that prove the pod never produced an answer for this request
_UNREACHED = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
    aiohttp.ClientPayloadError,
    ConnectionError,
)
_MAX_ERROR_BODY = 64 * 1024
# a slow client: stop reading the pod above this many bytes buffered for it, resume once
# aiohttp's writer has drained (its transport's own high mark is lower)
_HIGH_WATER = 256 * 1024


class Dispatcher(Protocol):
    """The picker's side of one request in flight."""

    def retry(self, pick: Any, now: float) -> str | None: ...
    def first_byte(self, pick: Any, now: float) -> None: ...
    def finish(
        self,
        pick: Any,
        now: float,
        *,
        ok: bool,
        cached_tokens: int | None = None,
        generated_text: str = "",
    ) -> None: ...


class Picker(Dispatcher, Protocol):
    """What tier2 needs of its picker (tier2.picker.PoolPicker); all synchronous."""

    def configure(self, pool: Pool) -> None: ...
    def stats(self) -> PickerStats: ...
    def set_endpoints(self, states: Mapping[str, EndpointState]) -> None: ...
    def is_saturated(self, now: float) -> bool: ...
    def build_request(
        self,
        body: Mapping[str, Any],
        *,
        request_id: str,
        kind: Literal["chat", "completions"] | None = None,
        priority: Priority = Priority.STANDARD,
        session: str | None = None,
    ) -> PickRequest: ...
    def pick(self, req: PickRequest, now: float) -> Any:
        """Raises NoEndpoint when no endpoint can take the request."""
        ...


class PodTimeout(GatewayError):
    status = 504
    code = "upstream_timeout"
    type = "api_error"
    expose = True


class _Unreached(Exception):
    """The pod failed before answering anything: the next-best pod may take over."""


class _Ledger:
    """first_byte and finish for one pick, each at most once."""

    def __init__(self, picker: Dispatcher, pick: Any, clock: Clock) -> None:
        self.picker, self.pick, self.clock = picker, pick, clock
        self.started = self.finished = False

    def first_byte(self) -> None:
        if not self.started:
            self.started = True
            self.picker.first_byte(self.pick, self.clock.monotonic())

    def finish(self, ok: bool, outcome: Outcome | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        self.picker.finish(
            self.pick,
            self.clock.monotonic(),
            ok=ok,
            cached_tokens=outcome.cached_tokens if outcome else None,
            generated_text=outcome.text if outcome else "",
        )


class DisconnectWatch:
    """Cancel the handler when its client goes away (aiohttp only does so itself when
    the server runs with handler_cancellation=True). A timer, not a task: cheap."""

    def __init__(self, request: web.Request, interval_s: float) -> None:
        self._request = request
        self._interval = interval_s
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(interval_s, self._check)

    def _check(self) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            self._handle = None
            self._request.task.cancel()
            return
        self._handle = self._loop.call_later(self._interval, self._check)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class ModelNotFound(NotFound):
    code = "model_not_found"


class Proxy:
    """Admission, pick and stream-through for one request at a time, over the state a
    replica keeps across config swaps (store, admission, the current picker)."""

    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        store: EndpointStore,
        admission: Admission,
        metrics: Tier2Metrics,
        clock: Clock,
        settings: Tier2Settings,
    ) -> None:
        self._session = session
        self.store = store
        self.admission = admission
        self.metrics = metrics
        self.clock = clock
        self.settings = settings
        self.runtime: Tier2Runtime | None = None
        self._picker: Picker | None = None
        self._fed_version = -1
        # a stream may pause up to stream_idle_s between bytes (tier2.podclient); a unary
        # answer comes whole at the end, so only the client (tier1's timeout) bounds it
        self._unary_timeout = aiohttp.ClientTimeout(sock_connect=settings.connect_timeout_s)
        self.pods = PodConnector(
            connect_timeout_s=settings.connect_timeout_s, limit=settings.upstream_connections
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the pod session is not open (app not started)")
        return self._session

    @session.setter
    def session(self, value: aiohttp.ClientSession) -> None:
        self._session = value

    def use(self, runtime: Tier2Runtime, picker: Picker) -> None:
        """Serve a new pool config (and picker, which may be the same object)."""
        if picker is not self._picker:
            self._picker, self._fed_version = picker, -1
        self.runtime = runtime

    def picker(self) -> Picker:
        """The current picker, told about endpoint changes since it last looked."""
        picker = self._picker
        if picker is None:
            raise Unavailable("tier2 has no pool configuration yet; retry shortly")
        self.refresh()
        return picker

    def refresh(self) -> None:
        """Hand the picker the endpoint states that changed since it last looked."""
        if self._picker is not None and self._fed_version != self.store.version:
            self._picker.set_endpoints(self.store.snapshot())
            self._fed_version = self.store.version

    def saturated(self, now: float) -> bool:
        return self._picker is not None and self.picker().is_saturated(now)

    def picker_stats(self) -> PickerStats | None:
        return self._picker.stats() if self._picker is not None else None

    async def handle(
        self, request: web.Request, req: InferenceRequest, request_id: str
    ) -> web.StreamResponse:
        runtime = self.runtime
        if runtime is None:
            raise Unavailable("tier2 has no pool configuration yet; retry shortly")
        spec = runtime.pool.spec
        if req.model != spec.model and req.model not in spec.adapters:
            raise ModelNotFound(
                f"model {req.model!r} is not served by pool {runtime.pool.name!r}", param="model"
            )
        watch = DisconnectWatch(request, self.settings.disconnect_check_s)
        try:
            picker, pick = await self._admit_and_pick(req, request_id)
            return await self.forward(request, req, picker, pick, pick.endpoint)
        finally:
            watch.close()

    async def _admit_and_pick(self, req: InferenceRequest, request_id: str) -> tuple[Picker, Any]:
        waited = await self.admission.admit(req.priority)
        try:
            picker = self.picker()  # after the wait: the state of now, not of arrival
            started = time.perf_counter()
            pick_req = picker.build_request(
                req.body,
                request_id=request_id,
                kind=req.kind,
                priority=req.priority,
                session=req.session,
            )
            pick = picker.pick(pick_req, self.clock.monotonic())
            self.metrics.pick_duration.observe(time.perf_counter() - started)
            return picker, pick
        except NoEndpoint as e:
            raise Overflow(str(e)) from None  # tier1 may still serve it elsewhere
        finally:
            if waited:
                self.admission.dispatched()

    async def forward(
        self,
        request: web.Request,
        req: InferenceRequest,
        picker: Dispatcher,
        pick: Any,
        endpoint: str,
    ) -> web.StreamResponse:
        ledger = _Ledger(picker, pick, self.clock)
        current: str | None = endpoint
        try:
            while current is not None:
                self.metrics.picks.labels(current).inc()
                try:
                    return await self._exchange(request, req, ledger, current)
                except _Unreached as e:
                    now = self.clock.monotonic()
                    log.warning("pod %s failed before answering (%s); trying the next", current, e)
                    self.store.mark_unreachable(current, now, f"connect: {e}")
                    self.metrics.connect_failures.labels(current).inc()
                    current = picker.retry(pick, now)
            raise Overflow("no endpoint of the pool could be reached")
        finally:
            ledger.finish(ok=False)  # a no-op when the exchange already finished

    async def _exchange(
        self, request: web.Request, req: InferenceRequest, ledger: _Ledger, endpoint: str
    ) -> web.StreamResponse:
        if req.stream:
            return await self._exchange_stream(request, req, ledger, endpoint)
        try:
            resp = await self.session.post(
                f"http://{endpoint}{_PATHS[req.kind]}",
                data=req.raw,
                headers=req.headers,
                timeout=self._unary_timeout,
            )
        except _UNREACHED as e:
            raise _Unreached(_describe(e)) from None
        except TimeoutError:
            raise PodTimeout(f"the pod {endpoint} did not answer in time") from None
        try:
            try:
                body = await resp.read()
            except _UNREACHED as e:
                raise _Unreached(_describe(e)) from None
            except TimeoutError:
                raise PodTimeout(f"the pod {endpoint} stopped answering") from None
            return self._whole(body, resp.status, resp.content_type, ledger, endpoint)
        finally:
            if resp.content.at_eof():
                resp.release()  # the connection goes back to the pool
            else:
                resp.close()  # the pod sees the disconnect and aborts the request

    async def _exchange_stream(
        self, request: web.Request, req: InferenceRequest, ledger: _Ledger, endpoint: str
    ) -> web.StreamResponse:
        """A streamed request over the lean pod client (tier2.podclient)."""
        path = _PATHS[req.kind]
        payload = request_head(path, endpoint, req.headers, len(req.raw)) + req.raw
        idle = self.settings.stream_idle_s
        opening = self.pods.open(endpoint, payload, idle)
        resp = await _before_answer(opening, endpoint, "did not answer in time")
        try:
            if resp.status >= 400:
                body = await _before_answer(resp.read_all(idle), endpoint, "stopped answering")
                ctype = resp.headers.get("content-type", "application/json").split(";")[0]
                return self._whole(body, resp.status, ctype, ledger, endpoint)
            return await self._relay(request, resp, ledger, endpoint)
        finally:
            self.pods.release(resp)  # reused only after a clean end; else the pod aborts

    def _whole(
        self, body: bytes, status: int, content_type: str, ledger: _Ledger, endpoint: str
    ) -> web.Response:
        ok = status < 400
        if ok:
            ledger.first_byte()
            ledger.finish(True, unary_outcome(body, self.settings.max_recorded_text_chars))
        else:  # refused before any work: what pick() recorded there is not cached
            ledger.finish(False)
            body = body[:_MAX_ERROR_BODY]
        headers = {DESTINATION_HEADER: endpoint}
        return web.Response(
            body=body,
            status=status,
            headers=headers,
            content_type=content_type or "application/json",
        )

    async def _relay(
        self,
        request: web.Request,
        resp: PodResponse,
        ledger: _Ledger,
        endpoint: str,
    ) -> web.StreamResponse:
        idle = self.settings.stream_idle_s
        first = await _before_answer(resp.first(idle), endpoint, "sent nothing in time")
        if not first:
            raise _Unreached("the pod closed the stream before any byte")
        ledger.first_byte()
        observer = StreamObserver(self.settings.max_recorded_text_chars)
        stream = web.StreamResponse(
            status=resp.status,
            headers={
                "Content-Type": resp.headers.get("content-type", "text/event-stream"),
                "Cache-Control": "no-cache",
                DESTINATION_HEADER: endpoint,
            },
        )
        chunked = request.version >= HttpVersion11
        if chunked:
            stream.enable_chunked_encoding()
        await stream.prepare(request)
        observer.feed(first)
        try:
            # aiohttp sends its buffered head with this first write; the pod's later
            # bytes go straight to the transport in the same framing (_ClientSink)
            await stream.write(first)
        except ConnectionResetError:
            ledger.finish(ok=False)  # the client left: the caller closes the pod side
            return stream
        transport = request.transport
        if transport is None or transport.is_closing():
            ledger.finish(ok=False)
            return stream
        sink = _ClientSink(transport, observer, chunked, resp)
        resp.attach(sink)
        while True:
            try:
                ended = await resp.wait(idle)
            except (TimeoutError, PodLost, PodUnreached) as e:
                stalled = isinstance(e, TimeoutError)
                log.warning("pod %s broke its stream: %s", endpoint, "stalled" if stalled else e)
                ledger.finish(ok=False, outcome=observer.outcome())
                if not sink.gone:
                    await _stream_error(stream, stalled)
                return stream
            if sink.gone:
                ledger.finish(ok=False)
                return stream
            if ended:
                break
            # the client reads slower than the pod writes: let its buffer drain (rare)
            try:
                await request.writer.drain()
            except ConnectionResetError:
                ledger.finish(ok=False)
                return stream
            resp.resume()
        ledger.finish(ok=True, outcome=observer.outcome())
        try:
            await stream.write_eof()
        except ConnectionResetError:
            pass
        return stream


class _ClientSink:
    """Where the pod's body pieces go as they arrive: the observer, then the client's
    transport in the answer's framing. Pauses the pod when the client falls behind."""

    __slots__ = ("transport", "observer", "chunked", "resp", "gone")

    def __init__(
        self, transport: Any, observer: StreamObserver, chunked: bool, resp: PodResponse
    ) -> None:
        self.transport, self.observer, self.chunked, self.resp = transport, observer, chunked, resp
        self.gone = False

    def __call__(self, data: bytes) -> None:
        if self.gone:
            return
        transport = self.transport
        if transport.is_closing():
            self.gone = True
            self.resp.pause()  # wakes the relay, which ends the request
            return
        self.observer.feed(data)
        transport.write(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)
        if transport.get_write_buffer_size() > _HIGH_WATER:
            self.resp.pause()


async def _before_answer(step: Awaitable[T], endpoint: str, silent: str) -> T:
    """A step with the pod before the client has any byte: a pod that fails it may be
    replaced by the next-best one (_Unreached); one that stays silent is a 504."""
    try:
        return await step
    except (PodUnreached, PodLost) as e:
        raise _Unreached(str(e)) from None
    except TimeoutError:
        raise PodTimeout(f"the pod {endpoint} {silent}") from None


async def _stream_error(stream: web.StreamResponse, stalled: bool) -> None:
    message = "the model server stalled" if stalled else "the model server broke the stream"
    code = "upstream_timeout" if stalled else "upstream_disconnected"
    event = {"error": {"message": message, "type": "api_error", "param": None, "code": code}}
    try:
        await stream.write(b"data: " + jsonutil.dumps(event) + b"\n\n")
        await stream.write_eof()
    except ConnectionResetError:
        pass


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
