"""``python -m bench.fakes``: serve one header-scripted fake upstream (for the benchmark).

    python -m bench.fakes --name a --port 8300
        [--dialect openai|azure|anthropic|bedrock|gemini|vertex] [--host H]
        [--api-key KEY] [--model M]... [--deployment NAME[=MODEL]]...
        [--aws-access-key-id ID --aws-secret-access-key SECRET --aws-region R]
        [--gcp-project P] [--gcp-location L]
        [--set KEY=VALUE]... [--record N] [--reuse-port]

Bedrock checks SigV4 signatures against the ``--aws-*`` test credentials (default
:class:`~bench.fakes.sigv4.AwsTestCredentials`); Vertex's ``--api-key`` is the access
token and ``--gcp-project``/``--gcp-location`` the project and location it serves.

``--set`` gives default scripting keys (e.g. ``--set chunks=20 --set chunk-delay-ms=5``),
which request headers override. ``--port 0`` picks a free port; the first line printed
names the URL. ``--reuse-port`` lets several processes share one port. Runs until SIGINT
or SIGTERM, then exits 0; exits 2 on bad arguments, 1 when it cannot listen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys

from bench.fakes.calls import DIALECTS
from bench.fakes.script import Script, ScriptError, check_instance_name
from bench.fakes.sigv4 import AwsTestCredentials
from bench.fakes.upstreams import start_fake

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.fakes", description="Serve a header-scripted fake upstream."
    )
    p.add_argument("--name", default="fake", help="instance name, [a-z0-9]+ (default fake)")
    p.add_argument("--port", type=int, default=8300, help="listen port; 0 = any (default 8300)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--dialect", choices=DIALECTS, default="openai")
    p.add_argument("--api-key", default=None, help="the only key accepted (default: any)")
    p.add_argument(
        "--model", action="append", default=None, help="accepted model (repeatable; default any)"
    )
    p.add_argument(
        "--deployment",
        action="append",
        default=None,
        metavar="NAME[=MODEL]",
        help="Azure deployment and the model it answers with (repeatable; default any)",
    )
    default = AwsTestCredentials()
    p.add_argument("--aws-access-key-id", default=default.access_key_id, help="Bedrock")
    p.add_argument("--aws-secret-access-key", default=default.secret_access_key, help="Bedrock")
    p.add_argument("--aws-region", default=default.region, help="Bedrock signing region")
    p.add_argument("--gcp-project", default=None, help="Vertex project (default any)")
    p.add_argument("--gcp-location", default=None, help="Vertex location (default any)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="default scripting key, e.g. chunk-delay-ms=5 (repeatable)",
    )
    p.add_argument(
        "--record",
        type=int,
        default=1000,
        metavar="N",
        help="keep the newest N requests for GET /_fake/requests (default 1000; 0 = none)",
    )
    p.add_argument("--reuse-port", action="store_true", help="set SO_REUSEPORT")
    return p


def _defaults(items: list[str]) -> Script:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ScriptError(f"--set expects KEY=VALUE, got {item!r}")
        pairs[key.strip().lower()] = value
    return Script().merged(pairs)


def _deployments(items: list[str] | None) -> dict[str, str] | None:
    if items is None:
        return None
    out: dict[str, str] = {}
    for item in items:
        name, _, model = item.partition("=")
        out[name] = model or name
    return out


async def _serve(args: argparse.Namespace, defaults: Script) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    fake = await start_fake(
        args.name,
        args.dialect,
        host=args.host,
        port=args.port,
        defaults=defaults,
        api_key=args.api_key,
        deployments=_deployments(args.deployment),
        models=args.model,
        record_limit=args.record,
        reuse_port=args.reuse_port,
        aws=AwsTestCredentials(args.aws_access_key_id, args.aws_secret_access_key, args.aws_region),
        gcp_project=args.gcp_project,
        gcp_location=args.gcp_location,
    )
    try:
        print(f"fake upstream {args.name} ({args.dialect}) listening on {fake.url}", flush=True)
        await stop.wait()
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_instance_name(args.name)
        defaults = _defaults(args.set)
        if args.record < 0:
            raise ValueError("--record must be >= 0")
    except ValueError as exc:  # ScriptError is a ValueError
        print(f"bench.fakes: {exc}", file=sys.stderr)
        return 2
    gc.collect()
    gc.freeze()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.Runner()
    try:
        with runner:
            runner.run(_serve(args, defaults))
    except OSError as exc:
        print(f"bench.fakes: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
