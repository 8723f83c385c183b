"""Drives one request through its attempt plan: translate, send, relay, account.

The only module that awaits upstreams and writes answers. Failover happens only before
any byte reaches the client; after that an upstream failure ends the stream with an
error event. Every attempt re-translates from the untouched parsed request.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from common import jsonutil
from common.clock import Clock
from common.config import BackendSchema, Consumer
from common.errors import GatewayError, UpstreamError
from tier1.accesslog import AccessLog
from tier1.auth.jwt import JwtVerifier
from tier1.metrics import Tier1Metrics
from tier1.providers.base import (
    ErrorWithHeaders,
    Ingress,
    ParsedRequest,
    StreamTranslator,
    Translator,
    Usage,
)
from tier1.quota import QuotaHook
from tier1.routing.health import BackendHealth
from tier1.routing.plan import attempts
from tier1.runtime import BackendRuntime, RouteRuntime, SigningSpec
from tier1.upstream.signing import Signer, make_signer

log = logging.getLogger(__name__)

_CONNECT_ERRORS = (
    aiohttp.ClientConnectorError,
    aiohttp.ClientOSError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientPayloadError,
    ConnectionError,
)
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


class AllAttemptsFailed(GatewayError):
    """Every attempt failed before any byte reached the client."""

    expose = True
    type = "api_error"

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after_s: float | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status, self.err_code, self.retry_after_s, self.body = (
            status,
            code,
            retry_after_s,
            body,
        )

    @property
    def status(self) -> int:  # type: ignore[override]
        return self.http_status

    @property
    def code(self) -> str:  # type: ignore[override]
        return self.err_code


@dataclass(slots=True)
class Failure:
    outcome: str
    """connect_error | timeout | 429 | 5xx | overflow | <status>"""
    status: int = 0
    retry_after_s: float | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Context:
    request_id: str
    consumer: Consumer
    route: RouteRuntime
    parsed: ParsedRequest
    started: float
    tried: list[str] = field(default_factory=list)
    backend: BackendRuntime | None = None
    status: int = 0
    usage: Usage | None = None
    response_model: str | None = None
    upstream_wait_s: float = 0.0
    first_byte_s: float | None = None
    error_type: str = ""

    @property
    def ingress(self) -> Ingress:
        return "anthropic" if self.parsed.endpoint == "messages" else "openai"


def _retry_after(value: str | None, now_wall: float) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - now_wall) if parsed else None


# gen_ai.operation.name values (OpenTelemetry GenAI conventions)
_OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}


def _translate_error(translator: Translator, status: int, failure: Failure) -> tuple[int, bytes]:
    if isinstance(translator, ErrorWithHeaders):
        return translator.error_with_headers(status, failure.body, failure.headers)
    return translator.error(status, failure.body)


def _classify(status: int, overflow: bool) -> str:
    if overflow:
        return "overflow"
    if status == 429:
        return "429"
    return "5xx" if status >= 500 else str(status)


def _retryable(outcome: str, status: int, on: list[Any]) -> bool:
    if outcome == "overflow":
        return True  # tier2 says the pool is full: spill to the next backend
    for rule in on:
        if rule == outcome or (isinstance(rule, int) and rule == status):
            return True
    return False


class Proxy:
    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        metrics: Tier1Metrics,
        quota: QuotaHook,
        clock: Clock,
        *,
        health: BackendHealth | None = None,
        rng: random.Random | None = None,
        log_bodies: bool = False,
        jwt: JwtVerifier | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.access_log = access_log
        self.jwt = jwt
        self._signers: dict[str, Signer] = {}
        self._session = session
        self.metrics = metrics
        self.quota = quota
        self.clock = clock
        self.health = health or BackendHealth()
        self.rng = rng or random.Random()
        self.log_bodies = log_bodies

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the upstream session is not open (app not started)")
        return self._session

    @session.setter
    def session(self, value: aiohttp.ClientSession) -> None:
        self._session = value

    async def handle(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        admission = await self.quota.admit(ctx.parsed, ctx.consumer, ctx.route.name)
        extra = {"x-request-id": ctx.request_id, **dict(admission.headers)}
        try:
            return await self._attempts(request, ctx, extra)
        except AllAttemptsFailed as e:
            ctx.status, ctx.error_type = e.status, e.code
            raise
        finally:
            ok = 200 <= ctx.status < 400
            self.quota.settle(admission, ctx.usage if ok else None, failed=not ok)
            self._record(ctx)

    async def _attempts(
        self, request: web.Request, ctx: Context, extra: dict[str, str]
    ) -> web.StreamResponse:
        retry = ctx.route.route.spec.retry
        deadline = ctx.started + retry.deadline_s if retry.deadline_s else None
        last: Failure | None = None
        plan = attempts(
            ctx.route.candidates,
            max_attempts=retry.attempts,
            rng=self.rng,
            available=lambda name: self.health.available(name, self.clock.monotonic()),
        )
        for n, cand in enumerate(plan):
            if n and retry.backoff_base_s:
                await asyncio.sleep(min(retry.backoff_max_s, retry.backoff_base_s * 2 ** (n - 1)))
            if deadline is not None and self.clock.monotonic() >= deadline:
                last = Failure("timeout")
                break
            backend, override = cand.item
            ctx.tried.append(backend.name)
            result = await self._attempt(request, ctx, backend, override, extra, deadline)
            if not isinstance(result, Failure):
                return result
            last = result
            self.metrics.child(self.metrics.attempts, backend.name, result.outcome).inc()
            now = self.clock.monotonic()
            # a pool's 429 sheds one priority class; it is no sign of a sick pool
            pool_shed = backend.schema is BackendSchema.POOL and result.outcome == "429"
            if (
                result.outcome != "overflow"
                and not pool_shed
                and self.health.failure(backend.name, backend.spec.outlier, now)
            ):
                self.metrics.child(self.metrics.cooldown, backend.name).set(1)
                log.warning(
                    "backend %s cooling down for %.0fs after repeated failures",
                    backend.name,
                    backend.spec.outlier.cooldown_s,
                )
            if result.retry_after_s and retry.honor_retry_after:
                self.health.retry_after(backend.name, now + result.retry_after_s)
            if not _retryable(result.outcome, result.status, list(retry.on)):
                break
        raise self._final_error(last, ctx)

    def _final_error(self, last: Failure | None, ctx: Context) -> AllAttemptsFailed:
        if last is None:
            return AllAttemptsFailed(
                503, "no_backend_available", "no backend is available for this model right now"
            )
        if last.outcome == "429":
            translator = ctx.backend.translators_for(ctx.ingress)[0] if ctx.backend else None
            body = _translate_error(translator, 429, last)[1] if translator and last.body else None
            return AllAttemptsFailed(
                429,
                "rate_limit_exceeded",
                "the upstream is rate limiting; retry later",
                retry_after_s=last.retry_after_s,
                body=body,
            )
        if last.outcome == "timeout":
            return AllAttemptsFailed(504, "upstream_timeout", "the upstream did not answer in time")
        if last.outcome == "overflow":
            return AllAttemptsFailed(
                503,
                "pool_saturated",
                "the model pool is saturated; retry later",
                retry_after_s=last.retry_after_s,
            )
        if last.outcome == "connect_error":
            return AllAttemptsFailed(
                502, "upstream_unreachable", "could not connect to the upstream"
            )
        if last.status and last.status < 500 and ctx.backend is not None:
            status, body = _translate_error(
                ctx.backend.translators_for(ctx.ingress)[0], last.status, last
            )
            return AllAttemptsFailed(
                status, "upstream_error", "the upstream rejected the request", body=body
            )
        return AllAttemptsFailed(
            502, "upstream_error", f"the upstream answered HTTP {last.status or 502}"
        )

    def _headers(
        self, ctx: Context, backend: BackendRuntime, base: dict[str, str]
    ) -> dict[str, str]:
        headers = {**ctx.parsed.headers, **base}
        spec = backend.spec
        for name in spec.headers.remove:
            headers.pop(name.lower(), None)
        for name, value in spec.headers.set.items():
            headers[name.lower()] = value
        for name, value in backend.auth_headers:
            headers[name] = value
        headers["x-request-id"] = ctx.request_id
        if backend.schema is BackendSchema.POOL:
            headers["x-strata-pool"] = backend.pool or ""
            headers["x-strata-consumer"] = ctx.consumer.name
            headers["x-strata-priority"] = ctx.consumer.spec.metadata.get("priority", "standard")
            headers["x-strata-request-id"] = ctx.request_id
        return headers

    async def _attempt(
        self,
        request: web.Request,
        ctx: Context,
        backend: BackendRuntime,
        override: str | None,
        extra: dict[str, str],
        deadline: float | None,
    ) -> web.StreamResponse | Failure:
        parsed = ctx.parsed
        translator: Translator = (
            targets[0]
            if len(targets := backend.translators_for(ctx.ingress)) == 1
            else self.rng.choice(targets)
        )
        upstream_model = override or parsed.model
        up = translator.request(parsed, upstream_model=upstream_model, force_usage=True)
        t = backend.spec.timeouts
        remaining = deadline - self.clock.monotonic() if deadline is not None else None
        total = (
            None if parsed.stream else (min(t.request_s, remaining) if remaining else t.request_s)
        )
        timeout = aiohttp.ClientTimeout(
            total=total,
            connect=t.connect_s if remaining is None else min(t.connect_s, remaining),
            sock_read=t.stream_idle_s if parsed.stream else None,
        )
        ctx.backend = backend
        headers = self._headers(ctx, backend, up.headers)
        if backend.signing is not None:
            try:
                await self._signer(backend.signing).sign(
                    up.method, up.url, headers, up.body, self.session
                )
            except UpstreamError:
                return Failure("connect_error")
        sent = time.monotonic()
        try:
            # translators build encoded URLs (Bedrock model ids carry %3A, and SigV4 signs
            # that form): stop aiohttp from normalising them
            resp = await self.session.request(
                up.method, URL(up.url, encoded=True), data=up.body, headers=headers, timeout=timeout
            )
        except TimeoutError:
            ctx.upstream_wait_s += time.monotonic() - sent
            return Failure("timeout")
        except _CONNECT_ERRORS:
            ctx.upstream_wait_s += time.monotonic() - sent
            return Failure("connect_error")
        try:
            if resp.status >= 400:
                return await self._failed_status(resp, backend)
            rename = upstream_model != parsed.model
            if parsed.stream:
                return await self._relay(
                    request, ctx, resp, translator.stream(parsed, rename=rename), extra, sent
                )
            try:
                body = await resp.read()
            except TimeoutError:
                return Failure("timeout")
            except _CONNECT_ERRORS:
                return Failure("connect_error")
            finally:
                ctx.upstream_wait_s += time.monotonic() - sent
            out = translator.response(parsed, resp.status, body, rename=rename)
            self._succeeded(ctx, backend, out.usage, out.model)
            return web.Response(
                body=out.body, status=200, content_type="application/json", headers=extra
            )
        finally:
            resp.release()

    def _signer(self, spec: SigningSpec) -> Signer:
        # kept across config swaps, so a reload does not drop cached tokens
        key = spec.cache_key
        signer = self._signers.get(key)
        if signer is None:
            signer = self._signers[key] = make_signer(spec)
        return signer

    async def _failed_status(
        self, resp: aiohttp.ClientResponse, backend: BackendRuntime
    ) -> Failure:
        try:
            body = await resp.read()
        except (TimeoutError, *_CONNECT_ERRORS):
            body = b""
        overflow = (
            backend.schema is BackendSchema.POOL
            and resp.status in (429, 503)
            and resp.headers.get("x-strata-overflow") == "1"
        )
        return Failure(
            _classify(resp.status, overflow),
            resp.status,
            _retry_after(resp.headers.get("retry-after"), self.clock.wall()),
            body,
            {k.lower(): v for k, v in resp.headers.items()},
        )

    def _succeeded(
        self, ctx: Context, backend: BackendRuntime, usage: Usage | None, model: str | None
    ) -> None:
        self.health.success(backend.name)
        self.metrics.child(self.metrics.attempts, backend.name, "success").inc()
        self.metrics.child(self.metrics.cooldown, backend.name).set(0)
        ctx.status, ctx.usage, ctx.response_model = 200, usage, model

    async def _relay(
        self,
        request: web.Request,
        ctx: Context,
        resp: aiohttp.ClientResponse,
        tap: StreamTranslator,
        extra: dict[str, str],
        sent: float,
    ) -> web.StreamResponse | Failure:
        chunks = resp.content.iter_any()
        # wait for the first bytes before answering: until then we may still fail over
        try:
            first = await anext(chunks)
        except (TimeoutError, StopAsyncIteration):
            ctx.upstream_wait_s += time.monotonic() - sent
            return Failure("timeout")
        except _CONNECT_ERRORS:
            ctx.upstream_wait_s += time.monotonic() - sent
            return Failure("connect_error")
        ctx.upstream_wait_s += time.monotonic() - sent
        assert ctx.backend is not None
        self._succeeded(ctx, ctx.backend, None, None)
        stream = web.StreamResponse(status=200, headers={**_SSE_HEADERS, **extra})
        await stream.prepare(request)
        ctx.first_byte_s = time.monotonic() - ctx.started
        try:
            out = tap.feed(first)
            if out:
                await stream.write(out)
            while True:
                waited = time.monotonic()
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                finally:
                    ctx.upstream_wait_s += time.monotonic() - waited
                out = tap.feed(chunk)
                if out:
                    await stream.write(out)
            tail = tap.close()
            if tail:
                await stream.write(tail)
            await stream.write_eof()
        except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as e:
            # bytes already reached the client: no failover, end the stream with an error
            kind = "upstream_timeout" if isinstance(e, TimeoutError) else "upstream_disconnected"
            ctx.status, ctx.error_type = 502, kind
            await self._stream_error(stream, kind, ctx.ingress)
        except ConnectionResetError:
            ctx.status, ctx.error_type = 499, "client_disconnected"
        ctx.usage, ctx.response_model = tap.usage, tap.model
        return stream

    async def _stream_error(self, stream: web.StreamResponse, kind: str, ingress: Ingress) -> None:
        message = (
            "the upstream stream stalled"
            if kind == "upstream_timeout"
            else "the upstream stream broke"
        )
        event = jsonutil.dumps(
            {"error": {"message": message, "type": "api_error", "param": None, "code": kind}}
        )
        if ingress == "anthropic":
            anthropic = {"type": "error", "error": {"type": "api_error", "message": message}}
            frame = b"event: error\ndata: " + jsonutil.dumps(anthropic) + b"\n\n"
        else:
            frame = b"data: " + event + b"\n\n"
        try:
            await stream.write(frame)
            await stream.write_eof()
        except ConnectionResetError:
            pass

    def _record(self, ctx: Context) -> None:
        elapsed = time.monotonic() - ctx.started
        p = ctx.parsed
        backend = ctx.backend.name if ctx.backend else ""
        provider = ctx.backend.provider if ctx.backend else ""
        response_model = ctx.response_model or ""
        op = _OPERATIONS[p.endpoint]
        m = self.metrics
        m.child(m.requests, ctx.route.name, backend, str(ctx.status)).inc()
        m.child(m.duration, op, provider, p.model, response_model, ctx.error_type).observe(elapsed)
        m.overhead.observe(max(0.0, elapsed - ctx.upstream_wait_s))
        u = ctx.usage
        if u is not None and ctx.status == 200:
            tokens = m.tokens
            m.child(tokens, op, provider, p.model, response_model, "input").observe(u.input)
            m.child(tokens, op, provider, p.model, response_model, "output").observe(u.output)
            if u.cached_input:
                m.child(tokens, op, provider, p.model, response_model, "cached_input").observe(
                    u.cached_input
                )
            if u.reasoning:
                m.child(tokens, op, provider, p.model, response_model, "reasoning").observe(
                    u.reasoning
                )
        if ctx.first_byte_s is not None:
            m.child(m.ttft, op, provider, p.model, response_model).observe(ctx.first_byte_s)
            if u is not None and u.output > 1:
                m.child(m.tpot, op, provider, p.model, response_model).observe(
                    (elapsed - ctx.first_byte_s) / (u.output - 1)
                )
        if self.access_log is not None:
            line: dict[str, Any] = {
                "request_id": ctx.request_id,
                "consumer": ctx.consumer.name,
                "route": ctx.route.name,
                "model": p.model,
                "response_model": ctx.response_model,
                "backend": backend,
                "tried": ctx.tried,
                "status": ctx.status,
                "stream": p.stream,
                "duration_ms": round(elapsed * 1000, 2),
                "ttft_ms": round(ctx.first_byte_s * 1000, 2)
                if ctx.first_byte_s is not None
                else None,
                "tokens": {
                    "input": u.input,
                    "cached_input": u.cached_input,
                    "output": u.output,
                    "reasoning": u.reasoning,
                }
                if u
                else None,
            }
            if ctx.error_type:
                line["error"] = ctx.error_type
            if self.log_bodies:
                line["request_body"] = p.raw.decode("utf-8", errors="replace")
            self.access_log.write(line)


def new_request_id(given: str | None) -> str:
    if given and len(given) <= 128 and given.isprintable() and " " not in given:
        return given
    return os.urandom(16).hex()
