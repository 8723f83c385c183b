"""`strata bench translation`: what each provider pair costs on top of passthrough.

In-process and single-threaded: for every (ingress, backend) pair, build the upstream
request from a representative chat request, translate a representative answer, and
translate a representative 50-chunk stream, timing each with `time.perf_counter_ns`
over many repetitions (best of `--rounds`, since the VM is noisy). The passthrough pair
(OpenAI → OpenAI) is measured in the same run; the targets are the extra cost:
≤ 150 µs per non-streamed request (request + answer) and ≤ 20 µs per stream chunk.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import jsonutil
from common.config import BackendSchema, parse_resource
from tier1.http.parse import parse
from tier1.providers.base import ParsedRequest, Translator
from tier1.providers.registry import translator_factory

CHUNKS = 50

CHAT: dict[str, Any] = {
    "model": "bench-model",
    "messages": [
        {"role": "system", "content": "You are a concise assistant. " * 8},
        {
            "role": "user",
            "content": "Summarise the following text. " + "Lorem ipsum dolor sit amet. " * 40,
        },
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "And give three bullet points."},
    ],
    "max_tokens": 256,
    "temperature": 0.2,
}

TEXT = "word " * 60


def _openai_answer() -> bytes:
    return jsonutil.dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "bench-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": TEXT},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 420, "completion_tokens": 60, "total_tokens": 480},
        }
    )


def _openai_stream() -> bytes:
    out = []
    for i in range(CHUNKS):
        out.append(
            b"data: "
            + jsonutil.dumps(
                {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "bench-model",
                    "choices": [
                        {"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}
                    ],
                }
            )
            + b"\n\n"
        )
    out.append(
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"bench-model","choices":[],"usage":{"prompt_tokens":420,"completion_tokens":50,"total_tokens":470}}\n\n'
    )
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def _anthropic_answer() -> bytes:
    return jsonutil.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "bench-model",
            "content": [{"type": "text", "text": TEXT}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 420, "output_tokens": 60},
        }
    )


def _sse(event: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + jsonutil.dumps(obj) + b"\n\n"


def _anthropic_stream() -> bytes:
    out = [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "bench-model",
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": 420, "output_tokens": 1},
                },
            },
        ),
        _sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    for i in range(CHUNKS):
        out.append(
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": f"tok{i} "},
                },
            )
        )
    out += [
        _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 50},
            },
        ),
        _sse("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(out)


def _frame(headers: dict[str, str], payload: bytes) -> bytes:
    """An AWS event-stream frame (test scaffolding; product code decodes with botocore)."""
    hb = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + len(v).to_bytes(2, "big") + v.encode()
        for k, v in headers.items()
    )
    total = 16 + len(hb) + len(payload)
    prelude = total.to_bytes(4, "big") + len(hb).to_bytes(4, "big")
    prelude += zlib.crc32(prelude).to_bytes(4, "big")
    body = prelude + hb + payload
    return body + zlib.crc32(body).to_bytes(4, "big")


def _event(kind: str, obj: dict[str, Any]) -> bytes:
    return _frame(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
        jsonutil.dumps(obj),
    )


def _converse_answer() -> bytes:
    return jsonutil.dumps(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": TEXT}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 420, "outputTokens": 60, "totalTokens": 480},
            "metrics": {"latencyMs": 100},
        }
    )


def _converse_stream() -> bytes:
    out = [_event("messageStart", {"role": "assistant"})]
    for i in range(CHUNKS):
        out.append(
            _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": f"tok{i} "}})
        )
    out += [
        _event("contentBlockStop", {"contentBlockIndex": 0}),
        _event("messageStop", {"stopReason": "end_turn"}),
        _event(
            "metadata",
            {
                "usage": {"inputTokens": 420, "outputTokens": 50, "totalTokens": 470},
                "metrics": {"latencyMs": 1},
            },
        ),
    ]
    return b"".join(out)


def _bedrock_anthropic_stream() -> bytes:
    events = [ev for ev in _anthropic_stream().split(b"\n\n") if ev]
    return b"".join(
        _event("chunk", {"bytes": base64.b64encode(ev.split(b"data: ", 1)[1]).decode()})
        for ev in events
    )


def _gemini_answer() -> bytes:
    return jsonutil.dumps(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": TEXT}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 420,
                "candidatesTokenCount": 60,
                "totalTokenCount": 480,
            },
            "modelVersion": "bench-model",
        }
    )


def _gemini_stream() -> bytes:
    out = []
    for i in range(CHUNKS):
        chunk: dict[str, Any] = {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": f"tok{i} "}]}, "index": 0}
            ],
            "modelVersion": "bench-model",
        }
        if i == CHUNKS - 1:
            chunk["candidates"][0]["finishReason"] = "STOP"
            chunk["usageMetadata"] = {
                "promptTokenCount": 420,
                "candidatesTokenCount": 50,
                "totalTokenCount": 470,
            }
        out.append(b"data: " + jsonutil.dumps(chunk) + b"\r\n\r\n")
    return b"".join(out)


ANSWERS: dict[BackendSchema, tuple[Callable[[], bytes], Callable[[], bytes]]] = {
    BackendSchema.OPENAI: (_openai_answer, _openai_stream),
    BackendSchema.AZURE_OPENAI: (_openai_answer, _openai_stream),
    BackendSchema.POOL: (_openai_answer, _openai_stream),
    BackendSchema.ANTHROPIC: (_anthropic_answer, _anthropic_stream),
    BackendSchema.VERTEX_ANTHROPIC: (_anthropic_answer, _anthropic_stream),
    BackendSchema.BEDROCK_ANTHROPIC: (_anthropic_answer, _bedrock_anthropic_stream),
    BackendSchema.BEDROCK: (_converse_answer, _converse_stream),
    BackendSchema.GEMINI: (_gemini_answer, _gemini_stream),
    BackendSchema.VERTEX: (_gemini_answer, _gemini_stream),
}


def _spec(schema: BackendSchema) -> Any:
    spec: dict[str, Any] = {"schema": schema.value}
    if schema is BackendSchema.POOL:
        spec["pool"] = "p"
    elif schema in (BackendSchema.OPENAI, BackendSchema.AZURE_OPENAI, BackendSchema.ANTHROPIC):
        spec["base_url"] = "https://example.invalid"
    if schema is BackendSchema.AZURE_OPENAI:
        spec["api_version"] = "2024-10-21"
        spec["auth"] = {"type": "azure_api_key", "key": "k"}
    elif schema in (BackendSchema.BEDROCK, BackendSchema.BEDROCK_ANTHROPIC):
        spec["region"] = "us-east-1"
        spec["auth"] = {"type": "aws"}
    elif schema in (BackendSchema.VERTEX, BackendSchema.VERTEX_ANTHROPIC):
        spec["project"], spec["region"] = "p", "us-east5"
        spec["auth"] = {"type": "gcp"}
    elif schema in (BackendSchema.ANTHROPIC, BackendSchema.GEMINI):
        spec["auth"] = {"type": "api_key", "key": "k"}
    return parse_resource({"kind": "Backend", "name": "b", "spec": spec}).spec


def _time(fn: Callable[[], object], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - t0) / n / 1000)
    return best


def _measure(
    translator: Translator,
    req: ParsedRequest,
    answer: bytes,
    stream_req: ParsedRequest,
    stream: bytes,
    n: int,
    rounds: int,
) -> tuple[float, float]:
    def non_stream() -> None:
        translator.request(req, upstream_model="bench-model", force_usage=True)
        translator.response(req, 200, answer, rename=False)

    pieces = [stream[i : i + 512] for i in range(0, len(stream), 512)]  # network-sized reads

    def streamed() -> None:
        translator.request(stream_req, upstream_model="bench-model", force_usage=True)
        s = translator.stream(stream_req, rename=False)
        for p in pieces:
            s.feed(p)
        s.close()

    return _time(non_stream, n, rounds), _time(streamed, max(1, n // 10), rounds) / CHUNKS


def run(n: int, rounds: int) -> dict[str, Any]:
    raw = jsonutil.dumps(CHAT)
    req = parse("chat", raw, {})
    stream_req = parse("chat", jsonutil.dumps({**CHAT, "stream": True}), {})
    messages_body = {
        "model": "bench-model",
        "max_tokens": 256,
        "system": CHAT["messages"][0]["content"],
        "messages": [m for m in CHAT["messages"][1:]],
    }
    mreq = parse("messages", jsonutil.dumps(messages_body), {})
    mstream = parse("messages", jsonutil.dumps({**messages_body, "stream": True}), {})
    rows: list[dict[str, Any]] = []
    for ingress, (r, sr) in (("openai", (req, stream_req)), ("anthropic", (mreq, mstream))):
        for schema, (answer, stream) in ANSWERS.items():
            spec = _spec(schema)
            translator = translator_factory(ingress, schema)(spec, "https://example.invalid")  # type: ignore[arg-type]
            per_request, per_chunk = _measure(translator, r, answer(), sr, stream(), n, rounds)
            rows.append(
                {
                    "ingress": ingress,
                    "backend": schema.value,
                    "request_us": per_request,
                    "chunk_us": per_chunk,
                }
            )
    base = next(row for row in rows if row["ingress"] == "openai" and row["backend"] == "openai")
    for row in rows:
        row["extra_request_us"] = row["request_us"] - base["request_us"]
        row["extra_chunk_us"] = row["chunk_us"] - base["chunk_us"]
        row["pass"] = row["extra_request_us"] <= 150 and row["extra_chunk_us"] <= 20
    return {
        "benchmark": "translation",
        "chunks_per_stream": CHUNKS,
        "repetitions": n,
        "rounds": rounds,
        "targets": {"extra_request_us": 150, "extra_chunk_us": 20},
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="strata bench translation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--n", type=int, default=2000, help="repetitions per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=".strata/bench/translation.json")
    args = p.parse_args(argv)
    result = run(args.n, args.rounds)
    lines = [
        "| ingress | backend | µs/request | extra | µs/chunk | extra | within target |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['ingress']} | {row['backend']} | {row['request_us']:.1f} | {row['extra_request_us']:+.1f} | "
            f"{row['chunk_us']:.2f} | {row['extra_chunk_us']:+.2f} | {'yes' if row['pass'] else 'NO'} |"
        )
    table = "\n".join(lines)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(jsonutil.dumps(result, pretty=True))
    out.with_suffix(".md").write_text(table + "\n")
    print(table)
    worst_req = max(r["extra_request_us"] for r in result["rows"])
    worst_chunk = max(r["extra_chunk_us"] for r in result["rows"])
    print(
        f"translation: worst extra {worst_req:.1f} µs/request (target ≤ 150), {worst_chunk:.2f} µs/chunk (target ≤ 20); "
        f"{sum(r['pass'] for r in result['rows'])}/{len(result['rows'])} pairs within target; JSON in {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
