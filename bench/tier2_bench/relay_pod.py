"""A paced vLLM stand-in for the relay benchmark: tokens at a fixed interval, cheaply.

tier2's relay cost is per token, and a real pod sends each token of each stream in its
own write, tens of milliseconds apart, so the proxy reads and writes once per token. A
stand-in that writes a whole answer at once would let the proxy's reads coalesce and
hide that cost. This one keeps every open stream in one list and, on each tick of
``interval_s``, writes the next token of every stream (one write per stream, as vLLM's
engine step does), from a single timer: the stand-in costs a few µs per token.

HTTP/1.1 keep-alive, one asyncio Protocol per connection:
  - ``GET /metrics``: vLLM's gauges and cache info as tier2 scrapes them (an idle pod);
  - ``POST /v1/chat/completions``: the body must be a chat request for ``model`` (400
    otherwise, as vLLM answers); ``max_tokens`` tokens (default 128), streamed as vLLM's
    chunks (role with the first token, a finish chunk, a usage chunk with
    ``prompt_tokens_details.cached_tokens`` when ``stream_options.include_usage``, then
    ``[DONE]``), or whole when ``stream`` is false.

Run: ``python -m bench.tier2_bench.relay_pod --port P [--interval-ms 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, cast

import orjson

_HEAD_END = b"\r\n\r\n"
_CREATED = 1_700_000_000
_WORD = " token"
METRICS = (
    b"# TYPE vllm:num_requests_running gauge\n"
    b'vllm:num_requests_running{model_name="M"} 0.0\n'
    b"# TYPE vllm:num_requests_waiting gauge\n"
    b'vllm:num_requests_waiting{model_name="M"} 0.0\n'
    b"# TYPE vllm:kv_cache_usage_perc gauge\n"
    b'vllm:kv_cache_usage_perc{model_name="M"} 0.1\n'
    b"# TYPE vllm:cache_config_info gauge\n"
    b'vllm:cache_config_info{block_size="16",num_gpu_blocks="19208"} 1.0\n'
    b"# TYPE vllm:prefix_cache_queries counter\n"
    b'vllm:prefix_cache_queries_total{model_name="M"} 0.0\n'
    b"# TYPE vllm:prefix_cache_hits counter\n"
    b'vllm:prefix_cache_hits_total{model_name="M"} 0.0\n'
)


def _frame(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(obj: dict[str, Any]) -> bytes:
    return _frame(b"data: " + orjson.dumps(obj) + b"\n\n")


def _head(status: int, ctype: bytes, length: int | None) -> bytes:
    framing = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    reason = b"OK" if status == 200 else b"Bad Request"
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s\r\n\r\n" % (status, reason, ctype, framing)


class _Stream:
    __slots__ = ("conn", "left", "model", "sent", "usage", "prompt")

    def __init__(self, conn: PodConnection, model: str, tokens: int, usage: bool, prompt: int):
        self.conn, self.model, self.left, self.usage, self.prompt = (
            conn,
            model,
            tokens,
            usage,
            prompt,
        )
        self.sent = 0


class PodServer:
    """The open streams of every connection, advanced together on each tick."""

    def __init__(self, model: str, interval_s: float) -> None:
        self.model = model
        self.interval_s = interval_s
        self.streams: list[_Stream] = []
        self.tokens = 0
        self._chunks: dict[str, bytes] = {}

    def chunk(self, model: str) -> bytes:
        """A content chunk for ``model`` (built once)."""
        out = self._chunks.get(model)
        if out is None:
            out = self._chunks[model] = _event(_chunk_obj(model, {"content": _WORD}, None))
        return out

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.interval_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self.tick()

    def tick(self) -> None:
        keep: list[_Stream] = []
        streams, self.streams = self.streams, []  # a stream opened meanwhile starts next tick
        for s in streams:
            transport = s.conn.transport
            if transport is None or transport.is_closing():
                continue  # the client left: vLLM aborts the request
            out = self.chunk(s.model)
            if s.sent == 0:
                out = _event(_chunk_obj(s.model, {"role": "assistant", "content": ""}, None)) + out
            s.sent += 1
            s.left -= 1
            self.tokens += 1
            if s.left <= 0:
                out += _event(_chunk_obj(s.model, {}, "length"))
                if s.usage:
                    out += _event(_usage_obj(s.model, s.prompt, s.sent))
                out += _frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"
                transport.write(out)
                s.conn.busy = False
                s.conn.resume()
            else:
                transport.write(out)
                keep.append(s)
        self.streams = keep + self.streams


def _chunk_obj(model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-relaybench",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def _usage_obj(model: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-relaybench",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "choices": [],
        "usage": _usage(prompt, completion),
    }


class PodConnection(asyncio.Protocol):
    def __init__(self, server: PodServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.resume()

    def resume(self) -> None:
        """Answer the next buffered request unless a stream is still going."""
        while not self.busy and self.transport is not None:
            end = self.buf.find(_HEAD_END)
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            self.answer(method, path, body)

    def answer(self, method: str, path: str, body: bytes) -> None:
        assert self.transport is not None
        if method == "GET" and path == "/metrics":
            self.transport.write(_head(200, b"text/plain; version=0.0.4", len(METRICS)) + METRICS)
            return
        if method != "POST" or path != "/v1/chat/completions":
            self._error(f"no route {method} {path}")
            return
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            self._error("the body is not JSON")
            return
        problem = _check(req, self.server.model)
        if problem:
            self._error(problem)
            return
        tokens = int(req.get("max_tokens") or 128)
        prompt = sum(len(str(m.get("content", ""))) for m in req["messages"]) // 4 + 1
        if not req.get("stream"):
            answer = {
                "id": "chatcmpl-relaybench",
                "object": "chat.completion",
                "created": _CREATED,
                "model": req["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": _WORD * tokens},
                        "logprobs": None,
                        "finish_reason": "length",
                    }
                ],
                "usage": _usage(prompt, tokens),
            }
            out = orjson.dumps(answer)
            self.transport.write(_head(200, b"application/json", len(out)) + out)
            return
        usage = bool((req.get("stream_options") or {}).get("include_usage"))
        self.transport.write(_head(200, b"text/event-stream", None))
        self.busy = True
        self.server.streams.append(_Stream(self, req["model"], tokens, usage, prompt))

    def _error(self, message: str) -> None:
        assert self.transport is not None
        err = {"object": "error", "message": message, "type": "BadRequestError", "code": 400}
        out = orjson.dumps(err)
        self.transport.write(_head(400, b"application/json", len(out)) + out)


def _check(req: Any, model: str) -> str | None:
    """What vLLM would refuse in a chat request, or None."""
    if not isinstance(req, dict):
        return "the body must be a JSON object"
    if req.get("model") != model:
        return f"The model `{req.get('model')}` does not exist."
    msgs = req.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "messages must be a non-empty list"
    for m in msgs:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool"):
            return "every message needs a role of system, user, assistant or tool"
    max_tokens = req.get("max_tokens", 128)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens must be a positive integer"
    return None


async def serve(
    port: int, model: str, interval_s: float, ready: asyncio.Event | None = None
) -> None:
    server = PodServer(model, interval_s)
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: PodConnection(server), "127.0.0.1", port)
    if ready is not None:
        ready.set()
    async with srv:
        await server.run()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="relay_pod", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model", default="relay-model")
    p.add_argument("--interval-ms", type=float, default=30.0, help="time between tokens")
    args = p.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port, args.model, args.interval_ms / 1e3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
