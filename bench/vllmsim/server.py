"""HTTP shell: N simulated vLLM pods, each an aiohttp app on its own port.

Endpoints per pod, shaped like vLLM's OpenAI server:
``POST /v1/chat/completions``, ``POST /v1/completions`` (SSE or not),
``GET /v1/models``, ``POST /v1/load_lora_adapter``, ``POST /v1/unload_lora_adapter``,
``GET /health``, ``GET /metrics``; plus simulator controls ``GET|POST /sim/faults``
and ``GET /sim/stats`` (token-emission lateness and process CPU, for the benchmark).

The engine is pure; :class:`~bench.vllmsim.runner.PodRunner` paces it in real time and
writes each streamed token when its step ends (:mod:`bench.vllmsim.stream`).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Mapping

import orjson
from aiohttp import web

from bench.vllmsim import protocol, tokenizer
from bench.vllmsim.clock import MonotonicClock
from bench.vllmsim.config import SimConfig, pod_rng
from bench.vllmsim.engine import Engine, Request, RequestSpec, RequestStatus
from bench.vllmsim.faults import FaultInjector, FaultSpec
from bench.vllmsim.metrics import PodMetrics
from bench.vllmsim.runner import PodRunner
from bench.vllmsim.stream import serve_stream, text_of

__all__ = ["Pod", "SimConfig", "pod_rng"]

_JSON = "application/json"


class Pod:
    """One simulated vLLM server: engine, runner, metrics, faults and its listener."""

    def __init__(self, index: int, config: SimConfig, host: str, port: int) -> None:
        self.index = index
        self.config = config
        self.host = host
        self.port = port
        self.faults = FaultInjector(config.faults, random.Random(f"faults:{config.seed}:{index}"))
        self.crashed = False
        self._runner_http: web.AppRunner | None = None
        self._handlers: set[asyncio.Task[object]] = set()
        self._bg: set[asyncio.Task[None]] = set()
        self._new_engine()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _new_engine(self) -> None:
        cfg = self.config
        self.engine_config = cfg.engine_config()
        self.clock = MonotonicClock(cfg.speed)
        self.engine = Engine(self.engine_config, self.clock, pod_rng(cfg.seed, self.index))
        for name in cfg.loras:
            self.engine.add_lora(name)
        self.metrics = PodMetrics(self.engine_config, time.time())
        self.runner = PodRunner(
            self.engine,
            self.clock,
            self.metrics,
            record_steps=cfg.record_steps,
            spin_lead_s=cfg.spin_lead_ms / 1000.0,
        )
        self.created = int(time.time())

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self.crashed = False
        self.runner.start()
        app = build_app(self)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
        self._runner_http = runner

    async def stop(self) -> None:
        """Stop serving: cut in-flight requests, close the listener, stop the step loop."""
        for task in list(self._handlers):
            task.cancel()
        await self.runner.close()
        if self._runner_http is not None:
            await self._runner_http.cleanup()
            self._runner_http = None

    async def restart(self) -> None:
        """Stop, then start on the same port with a fresh engine (empty KV cache)."""
        await self.stop()
        self._new_engine()
        await self.start()

    def crash(self) -> None:
        """Die from inside a handler: the stop runs as a background task."""
        if self.crashed:
            return
        self.crashed = True
        task = asyncio.get_running_loop().create_task(self.stop())
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    def set_faults(self, spec: FaultSpec) -> None:
        self.faults.spec = spec

    def served_models(self) -> dict[str, bool]:
        served = {self.engine_config.model_name: True}
        served.update(dict.fromkeys(self.engine.lora_adapters, True))
        return served


POD_KEY: web.AppKey[Pod] = web.AppKey("vllmsim_pod", Pod)


# --- handlers ----------------------------------------------------------------------


def _error(status: int, message: str, err_type: str) -> web.Response:
    return web.Response(
        status=status, body=protocol.error_body(status, message, err_type), content_type=_JSON
    )


async def _completions(request: web.Request, *, chat: bool) -> web.StreamResponse:
    pod = request.app[POD_KEY]
    task = asyncio.current_task()
    assert task is not None
    pod._handlers.add(task)
    try:
        return await _serve_completion(request, pod, chat=chat)
    finally:
        pod._handlers.discard(task)


async def _serve_completion(request: web.Request, pod: Pod, *, chat: bool) -> web.StreamResponse:
    raw = await request.read()
    try:
        parsed = protocol.parse_request(
            raw,
            chat=chat,
            served=pod.served_models(),
            max_model_len=pod.engine_config.max_model_len,
        )
    except protocol.ApiError as exc:
        return _error(exc.status, exc.message, exc.err_type)

    fate = pod.faults.decide()
    if fate.crash:
        pod.crash()
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)
    if fate.error:
        return _error(
            500, "Simulated internal server error (fault injection).", "InternalServerError"
        )
    if fate.hang:
        await asyncio.get_running_loop().create_future()  # until the pod stops
    if fate.spike_s:
        await asyncio.sleep(fate.spike_s)

    pieces: list[str] | None = None
    forced: list[int] | None = None
    if pod.config.mode == "echo" and parsed.echo_text:
        pairs = tokenizer.encode_pieces(parsed.echo_text)
        forced = [tid for tid, _ in pairs]
        pieces = [p for _, p in pairs]
    prefix = "chatcmpl-" if chat else "cmpl-"
    rid = prefix + uuid.uuid4().hex
    lora = parsed.model if parsed.model != pod.engine_config.model_name else None
    spec = RequestSpec(rid, parsed.prompt_ids, parsed.max_tokens, parsed.ignore_eos, lora, forced)
    try:
        req = pod.runner.submit(spec)
    except ValueError as exc:
        return _error(400, str(exc), "BadRequestError")
    try:
        if parsed.stream:
            return await serve_stream(request, pod.runner, parsed, req, pieces, fate.stall_s)
        return await _unary(pod, parsed, req, pieces, fate.stall_s)
    finally:
        if req.status is not RequestStatus.FINISHED:
            pod.runner.abort(rid)


async def _unary(
    pod: Pod,
    parsed: protocol.CompletionRequest,
    req: Request,
    pieces: list[str] | None,
    stall_s: float,
) -> web.Response:
    await pod.runner.wait_finished(req)
    if stall_s:
        await asyncio.sleep(stall_s)
    body = protocol.full_response(
        chat=parsed.chat,
        request_id=req.request_id,
        created=int(time.time()),
        model=parsed.model,
        text=text_of(req, pieces, 0, req.num_output),
        finish_reason=req.finish_reason,
        usage=protocol.usage_dict(req.num_prompt_tokens, req.num_output, req.num_cached_tokens),
    )
    return web.Response(body=body, content_type=_JSON)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _completions(request, chat=True)


async def completions(request: web.Request) -> web.StreamResponse:
    return await _completions(request, chat=False)


async def models(request: web.Request) -> web.Response:
    pod = request.app[POD_KEY]
    cfg = pod.engine_config
    base = {
        "id": cfg.model_name,
        "object": "model",
        "created": pod.created,
        "owned_by": "vllm",
        "root": cfg.model_name,
        "parent": None,
        "max_model_len": cfg.max_model_len,
    }
    data = [base]
    for name in pod.engine.lora_adapters:
        data.append(
            {
                "id": name,
                "object": "model",
                "created": pod.created,
                "owned_by": "vllm",
                "root": f"/sim/loras/{name}",
                "parent": cfg.model_name,
                "max_model_len": None,
            }
        )
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type=_JSON)


async def _lora_name(request: web.Request) -> str:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise protocol.ApiError(400, "request body must be JSON") from None
    name = body.get("lora_name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name:
        raise protocol.ApiError(400, "lora_name is required")
    return name


async def load_lora(request: web.Request) -> web.Response:
    pod = request.app[POD_KEY]
    try:
        name = await _lora_name(request)
        if pod.engine_config.max_loras < 1:
            raise protocol.ApiError(400, "LoRA is not enabled (start with --max-loras K, K > 0)")
        if not pod.engine.add_lora(name):
            raise protocol.ApiError(
                400, f"The lora adapter '{name}' has already been loaded.", "InvalidUserInput"
            )
    except protocol.ApiError as exc:
        return _error(exc.status, exc.message, exc.err_type)
    return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")


async def unload_lora(request: web.Request) -> web.Response:
    pod = request.app[POD_KEY]
    try:
        name = await _lora_name(request)
        if not pod.engine.remove_lora(name):
            raise protocol.ApiError(
                404, f"The lora adapter '{name}' cannot be found.", "NotFoundError"
            )
    except protocol.ApiError as exc:
        return _error(exc.status, exc.message, exc.err_type)
    return web.Response(text=f"Success: LoRA adapter '{name}' removed successfully.")


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[POD_KEY].metrics.render()
    return web.Response(
        body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


async def get_faults(request: web.Request) -> web.Response:
    pod = request.app[POD_KEY]
    return web.Response(body=orjson.dumps(pod.faults.spec.as_dict()), content_type=_JSON)


async def set_faults(request: web.Request) -> web.Response:
    """Replace some fault fields at run time: body ``{"error_rate": 0.2, ...}``."""
    pod = request.app[POD_KEY]
    try:
        body = orjson.loads(await request.read())
        if not isinstance(body, Mapping):
            raise ValueError("body must be a JSON object")
        pod.set_faults(pod.faults.spec.merged(body))
    except (ValueError, orjson.JSONDecodeError) as exc:
        return _error(400, str(exc), "BadRequestError")
    return web.Response(body=orjson.dumps(pod.faults.spec.as_dict()), content_type=_JSON)


async def sim_stats(request: web.Request) -> web.Response:
    """Token-emission lateness vs the engine schedule, engine TTFT and this process's CPU.

    ``?reset=1`` clears the lateness histogram after answering (the benchmark's warm-up).
    """
    pod = request.app[POD_KEY]
    emission = pod.runner.emission
    ttft = pod.metrics.ttft
    body = {
        "steps": pod.engine.num_steps,
        "lateness_s": emission.as_dict(),
        "process_cpu_s": time.process_time(),
        "generation_tokens": pod.engine.generation_tokens,
        "requests_seen": pod.faults.requests_seen,
        "engine_ttft_sum_s": ttft.sum,
        "engine_ttft_count": ttft.count,
    }
    if request.query.get("reset") == "1":
        emission.clear()
    return web.Response(body=orjson.dumps(body), content_type=_JSON)


def build_app(pod: Pod) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[POD_KEY] = pod
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/load_lora_adapter", load_lora)
    app.router.add_post("/v1/unload_lora_adapter", unload_lora)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/sim/faults", get_faults)
    app.router.add_post("/sim/faults", set_faults)
    app.router.add_get("/sim/stats", sim_stats)
    return app
