"""The benchmark's upstream: bench.fakes' OpenAI fake reporting a fixed usage, plus a
count of the chat completions it answered (by status), so the accuracy table can set
what reached the provider beside what the client saw.

    python -m bench.ratelimit_bench.upstream --port P

``GET /_bench/counts`` answers ``{"200": n, ...}``. Nothing is recorded per request
(``record_limit=0``): a long run at full rate would hold every body in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys
from collections import Counter
from collections.abc import Mapping

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from bench.fakes import Script, build_fake_app
from bench.ratelimit_bench.config import UPSTREAM_KEY, USAGE

COUNTS_PATH = "/_bench/counts"
CHAT_PATH = "/v1/chat/completions"


def build_app(usage: Mapping[str, int] = USAGE) -> web.Application:
    app = build_fake_app(
        "up", "openai", defaults=Script(usage=dict(usage)), api_key=UPSTREAM_KEY, record_limit=0
    )
    counts: Counter[int] = Counter()

    # the fake routes every other path to its catch-all, so the count is answered
    # here, before that handler runs
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == COUNTS_PATH:
            body = orjson.dumps({str(k): v for k, v in sorted(counts.items())})
            return web.Response(body=body, content_type="application/json")
        response = await handler(request)
        if request.path == CHAT_PATH:
            counts[response.status] += 1
        return response

    app.middlewares.append(count)
    return app


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(build_app(), access_log=None, shutdown_timeout=0.25)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(f"rate-limit bench upstream on 127.0.0.1:{port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ratelimit_bench.upstream")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    gc.collect()
    gc.freeze()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.Runner()
    with runner:
        runner.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
