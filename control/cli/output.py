"""Tables for people, JSON/YAML for scripts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import yaml

from common import jsonutil


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [
        ["" if c is None else str(c) for c in row] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def render(data: Any, fmt: str) -> str:
    if fmt == "json":
        return jsonutil.dumps_str(data, pretty=True)
    if isinstance(data, list):
        return yaml.safe_dump_all(data, sort_keys=False).rstrip()
    return yaml.safe_dump(data, sort_keys=False).rstrip()


def ago(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "-"
    seconds = max(0.0, (now or time.time()) - ts)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def resource_rows(items: list[dict[str, Any]]) -> str:
    rows = []
    for item in items:
        spec = item.get("spec", {})
        rows.append(
            [item["kind"], item["name"], item.get("revision"), _summary(item["kind"], spec)]
        )
    return table(["KIND", "NAME", "REVISION", "SUMMARY"], rows)


def _summary(kind: str, spec: dict[str, Any]) -> str:
    if kind == "Backend":
        target = spec.get("pool") or spec.get("base_url") or spec.get("region") or ""
        return f"{spec.get('schema')} {target}".strip()
    if kind == "Route":
        backends = ",".join(b["name"] for b in spec.get("backends", []))
        return f"models={','.join(spec.get('match', {}).get('models', []))} backends={backends}"
    if kind == "Pool":
        eps = spec.get("endpoints", {})
        where = (
            ",".join(eps.get("addresses", []))
            if eps.get("type") == "static"
            else f"dns:{eps.get('name')}"
        )
        return f"model={spec.get('model')} endpoints={where}"
    if kind == "Consumer":
        return f"keys={len(spec.get('keys', []))} models={','.join(spec.get('allowed_models', [])) or '*'}"
    if kind == "RateLimitPolicy":
        limits = ";".join(
            f"{lim.get('requests') or '-'}req/{lim.get('tokens') or '-'}tok per {lim['window']}"
            for lim in spec.get("limits", [])
        )
        return f"{spec.get('mode')} by {'+'.join(spec.get('descriptor', [])) or 'global'} {limits}"
    return ""


def status_text(data: dict[str, Any]) -> str:
    now = time.time()
    lines = [f"config revision {data.get('config_revision')}"]
    if data.get("compile_error"):
        lines.append(f"COMPILE ERROR: {data['compile_error']}")
    controls = data.get("controls", [])
    lines.append("")
    lines.append(
        table(
            ["CONTROL", "REST", "GRPC", "UP"],
            [
                [c.get("control_id"), c.get("rest"), c.get("grpc"), ago(c.get("started_at"), now)]
                for c in controls
            ],
        )
    )
    lines.append("")
    rows = []
    for n in data.get("nodes", []):
        nack = n.get("last_nack")
        state = (
            "in sync"
            if n.get("in_sync")
            else (
                "rejected"
                if nack and nack.get("revision") == n.get("desired_revision")
                else "updating"
            )
        )
        if n.get("message"):
            state = n["message"]
        rows.append(
            [
                n["node_id"],
                n["tier"],
                n.get("pool") or "-",
                n.get("address"),
                n.get("applied_revision"),
                n.get("desired_revision"),
                state,
                ago(n.get("last_seen"), now),
                (f"r{nack['revision']}: {nack['reason']}" if nack else "-"),
            ]
        )
    if rows:
        lines.append(
            table(
                [
                    "NODE",
                    "TIER",
                    "POOL",
                    "ADDRESS",
                    "APPLIED",
                    "DESIRED",
                    "STATE",
                    "SEEN",
                    "LAST NACK",
                ],
                rows,
            )
        )
    else:
        lines.append("no tier1/tier2 nodes connected")
    return "\n".join(lines)
