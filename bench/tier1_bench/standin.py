"""A stand-in OpenAI upstream for the benchmark, used when ``bench.fakes`` is not usable.

``POST /v1/chat/completions`` answers a ~610-byte ``chat.completion``, or, with
``"stream": true``, a role chunk, ``x-fake-chunks`` (default 50) content chunks of about
256 bytes, a finish chunk, a usage chunk when ``stream_options.include_usage`` is true,
and ``data: [DONE]``, one write per event (as a provider does). Answers are built once
per (model, chunks, usage) and cached, so the stand-in costs little of CPU 1.

Run: ``python -m bench.tier1_bench.standin --port P``.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import lru_cache

import orjson
from aiohttp import web

_WORDS = ("This", " is", " a", " fake", " answer", " from", " a", " stand-in", " upstream", ".")
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


@lru_cache(maxsize=64)
def _body(model: str) -> bytes:
    obj = {
        "id": "chatcmpl-standin-000000000000",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(_WORDS) * 6, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 25, "completion_tokens": 40, "total_tokens": 65},
        "system_fingerprint": "fp_standin",
    }
    return orjson.dumps(obj)


def _chunk(model: str, delta: dict[str, object], finish: str | None, pad: int) -> bytes:
    obj = {
        "id": "chatcmpl-standin-000000000000",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": "fp_standin",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "obfuscation": "x" * pad,
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


@lru_cache(maxsize=64)
def _events(model: str, chunks: int, usage: bool) -> tuple[bytes, ...]:
    out = [_chunk(model, {"role": "assistant", "content": ""}, None, 60)]
    for i in range(chunks):
        word = _WORDS[i % len(_WORDS)]
        out.append(_chunk(model, {"content": word}, None, 80 - len(word)))
    out.append(_chunk(model, {}, "stop", 70))
    if usage:
        obj = {
            "id": "chatcmpl-standin-000000000000",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": 25,
                "completion_tokens": chunks,
                "total_tokens": 25 + chunks,
            },
        }
        out.append(b"data: " + orjson.dumps(obj) + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return tuple(out)


async def chat(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return web.json_response({"error": {"message": "bad JSON"}}, status=400)
    model = str(body.get("model") or "standin")
    if not body.get("stream"):
        return web.Response(body=_body(model), content_type="application/json")
    chunks = int(request.headers.get("x-fake-chunks", "50"))
    usage = bool((body.get("stream_options") or {}).get("include_usage"))
    resp = web.StreamResponse(headers=_SSE_HEADERS)
    await resp.prepare(request)
    for event in _events(model, chunks, usage):
        await resp.write(event)
    await resp.write_eof()
    return resp


def build_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tier1_bench.standin")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    print(f"stand-in upstream on 127.0.0.1:{args.port} at {time.time():.0f}", flush=True)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop_factory = None
    web.run_app(
        build_app(),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=loop_factory() if loop_factory else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
