"""The reference for this machine: a bare aiohttp pass-through proxy, one process.

It forwards the request body untouched to the upstream (one shared ClientSession, keep
alive), swaps the client's credentials for the upstream key, and relays the answer:
whole for JSON, as raw bytes with ``iter_any()`` for a stream. No auth, routing,
metrics or logging: the floor a Python edge process cannot go below.

Run: ``python -m bench.tier1_bench.bareproxy --port P --upstream http://127.0.0.1:U``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

UPSTREAM: web.AppKey[str] = web.AppKey("upstream", str)
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)
API_KEY = "sk-upstream"
_DROP = frozenset({"host", "authorization", "content-length", "connection", "transfer-encoding"})


async def forward(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
    headers["Authorization"] = f"Bearer {API_KEY}"
    session = request.app[SESSION]
    async with session.post(request.app[UPSTREAM] + request.path, data=body, headers=headers) as up:
        ctype = up.headers.get("Content-Type", "application/json")
        if not ctype.startswith("text/event-stream"):
            return web.Response(
                body=await up.read(), status=up.status, headers={"Content-Type": ctype}
            )
        out = web.StreamResponse(status=up.status, headers={"Content-Type": ctype})
        await out.prepare(request)
        async for data in up.content.iter_any():
            await out.write(data)
        await out.write_eof()
        return out


def build_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")

    async def session(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=1000)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as s:
            app[SESSION] = s
            yield

    app.cleanup_ctx.append(session)
    app.router.add_post("/v1/chat/completions", forward)
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tier1_bench.bareproxy")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="http://host:port (no /v1)")
    args = p.parse_args(argv)
    print(f"bare proxy on 127.0.0.1:{args.port} -> {args.upstream}", flush=True)
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop = None
    web.run_app(
        build_app(args.upstream),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=loop,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
