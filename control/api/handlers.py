"""Operators' REST API: /v1/<kind>s[/<name>], /v1/apply, consumer keys, /v1/status."""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web
from prometheus_client import generate_latest

from common import jsonutil
from common.config import (
    ApiKey,
    Consumer,
    Resource,
    hash_api_key,
    new_api_key,
    parse_documents,
    parse_resource,
    to_public,
)
from common.config.resources import KIND_BY_PLURAL
from common.errors import BadRequest, Conflict, FieldError, NotFound, Unavailable, ValidationFailed
from control.api.keys import DISTRIBUTOR, METRICS, SERVICE
from control.api.middleware import json_response
from control.nodes import read_status
from control.service import Change, WriteResult
from control.store.base import StoreError


def _kind(request: web.Request) -> str:
    plural = request.match_info["plural"]
    if plural not in KIND_BY_PLURAL:
        raise NotFound(f"unknown resource type {plural!r}; use one of: {', '.join(KIND_BY_PLURAL)}")
    return KIND_BY_PLURAL[plural]


def _dry_run(request: web.Request) -> bool:
    value = request.query.get("dry_run", "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise BadRequest("dry_run must be true or false", param="dry_run")
    return value in ("true", "1")


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        data = jsonutil.loads(raw)
    except ValueError:
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def _count(request: web.Request, kind: str, outcome: str) -> None:
    request.app[METRICS].writes.labels(kind, outcome).inc()


async def list_resources(request: web.Request) -> web.Response:
    kind = _kind(request)
    items = await request.app[SERVICE].list_kind(kind)
    return json_response({"items": [to_public(r) for r in items]})


async def get_resource(request: web.Request) -> web.Response:
    r = await request.app[SERVICE].get(_kind(request), request.match_info["name"])
    return json_response(to_public(r))


def _check_identity(doc: dict[str, Any], kind: str, name: str | None) -> None:
    doc.setdefault("kind", kind)
    if doc["kind"] != kind:
        raise BadRequest(f"body kind {doc['kind']!r} does not match the URL ({kind})", param="kind")
    if name is not None:
        doc.setdefault("name", name)
        if doc["name"] != name:
            raise BadRequest(
                f"body name {doc['name']!r} does not match the URL ({name!r})", param="name"
            )


async def create_resource(request: web.Request) -> web.Response:
    kind = _kind(request)
    doc = await _json_object(request)
    _check_identity(doc, kind, None)
    if doc.get("revision") is not None:
        raise BadRequest(
            "revision is set by the server; leave it out when creating", param="revision"
        )
    result = await request.app[SERVICE].create(doc, dry_run=_dry_run(request))
    _count(request, kind, "dry_run" if _dry_run(request) else "created")
    return json_response(to_public(result.resource), status=200 if _dry_run(request) else 201)


async def replace_resource(request: web.Request) -> web.Response:
    kind, name = _kind(request), request.match_info["name"]
    doc = await _json_object(request)
    _check_identity(doc, kind, name)
    expect = doc.pop("revision", None)
    if not isinstance(expect, int):
        raise BadRequest(
            "send the revision you read (field `revision`) so a concurrent change is not lost; "
            "use POST /v1/apply to write without one",
            param="revision",
        )
    result = await request.app[SERVICE].replace(doc, expect=expect, dry_run=_dry_run(request))
    _count(request, kind, "replaced" if result.changed else "unchanged")
    return json_response(to_public(result.resource))


async def delete_resource(request: web.Request) -> web.Response:
    kind, name = _kind(request), request.match_info["name"]
    expect_text = request.query.get("revision")
    expect = None
    if expect_text is not None:
        if not expect_text.isdigit():
            raise BadRequest("revision must be a whole number", param="revision")
        expect = int(expect_text)
    rev = await request.app[SERVICE].delete(kind, name, expect=expect, dry_run=_dry_run(request))
    _count(request, kind, "deleted")
    return json_response(
        {"kind": kind, "name": name, "deleted": not _dry_run(request), "revision": rev}
    )


def _action(result: WriteResult, existed: bool) -> str:
    if not result.changed:
        return "unchanged"
    return "configured" if existed else "created"


async def apply_documents(request: web.Request) -> web.Response:
    """Body: YAML/JSON documents (text) or {"documents": [...]}; all stored or none."""
    dry_run = _dry_run(request)
    raw = await request.read()
    if request.content_type == "application/json":
        data = await _json_object(request)
        docs = data.get("documents")
        if not isinstance(docs, list):
            raise BadRequest('send {"documents": [...]}', param="documents")
        resources = _parse_all(docs)
    else:
        resources = parse_documents(raw.decode("utf-8", errors="replace"), source="body")
    if not resources:
        raise BadRequest("no documents to apply")
    seen: set[tuple[str, str]] = set()
    for r in resources:
        if (r.kind, r.name) in seen:
            raise ValidationFailed(
                "duplicate documents", [FieldError(f"{r.kind}/{r.name}", "appears twice")]
            )
        seen.add((r.kind, r.name))
    service = request.app[SERVICE]
    cfg = service.config()
    existed = [cfg.get(r.kind, r.name) is not None for r in resources]
    results = await service.write([Change(r, "apply") for r in resources], dry_run=dry_run)
    out = []
    for r, res, ex in zip(resources, results, existed, strict=True):
        action = (
            _action(res, ex)
            if not dry_run
            else ("unchanged" if not res.changed and ex else "would apply")
        )
        _count(request, r.kind, action)
        out.append(
            {"kind": r.kind, "name": r.name, "action": action, "revision": res.resource.revision}
        )
    return json_response({"results": out, "dry_run": dry_run})


def _parse_all(docs: list[Any]) -> list[Resource]:
    out: list[Resource] = []
    errors: list[FieldError] = []
    for i, doc in enumerate(docs):
        try:
            out.append(parse_resource(doc, where=f"documents[{i}]"))
        except ValidationFailed as e:
            errors.extend(e.errors)
    if errors:
        raise ValidationFailed("invalid documents", errors)
    return out


async def create_key(request: web.Request) -> web.Response:
    """Generate a consumer API key; only its hash is stored, the key is shown once."""
    name = request.match_info["name"]
    service = request.app[SERVICE]
    key = new_api_key()
    api_key = ApiKey(
        id=f"k-{uuid.uuid4().hex[:10]}",
        hash=hash_api_key(key),
        hint=key[:14],
        created_at=time.time(),
    )
    for _ in range(5):
        current = await service.get("Consumer", name)
        assert isinstance(current, Consumer)
        spec = current.spec.model_copy(update={"keys": [*current.spec.keys, api_key]})
        try:
            await service.replace(
                current.model_copy(update={"spec": spec}), expect=current.revision
            )
            break
        except Conflict:
            continue
    else:
        raise Unavailable("consumer keeps changing; retry")
    _count(request, "Consumer", "key_created")
    body = {"consumer": name, "id": api_key.id, "key": key, "hint": api_key.hint}
    return json_response(body, status=201)


async def status(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    distributor = request.app[DISTRIBUTOR]
    try:
        data = await read_status(service.store, service.keys)
    except StoreError as e:
        raise Unavailable(f"cannot read status: {e}") from None
    compiled = distributor.compiled
    t1 = compiled.tier1 if compiled else None  # a Wire: revision + checksum
    for node in data["nodes"]:
        want = distributor.for_node(node["tier"], node.get("pool"))
        node["desired_revision"] = want.revision if want else None
        node["in_sync"] = want is not None and node.get("applied_checksum") == want.checksum
    data["config_revision"] = t1.revision if t1 else 0
    data["compile_error"] = compiled.error if compiled else ""
    data["nodes"].sort(key=lambda n: (n["tier"], n.get("pool") or "", n["node_id"]))
    return json_response(data)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    if not service.ready.is_set():
        return json_response({"ready": False, "reason": "configuration not loaded yet"}, status=503)
    try:
        await service.store.get(service.keys.generation)
    except StoreError as e:
        return json_response({"ready": False, "reason": f"store unreachable: {e}"}, status=503)
    return json_response({"ready": True, "revision": service.revision})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/status", status)
    app.router.add_post("/v1/apply", apply_documents)
    app.router.add_post("/v1/consumers/{name}/keys", create_key)
    app.router.add_get("/v1/{plural}", list_resources)
    app.router.add_post("/v1/{plural}", create_resource)
    app.router.add_get("/v1/{plural}/{name}", get_resource)
    app.router.add_put("/v1/{plural}/{name}", replace_resource)
    app.router.add_delete("/v1/{plural}/{name}", delete_resource)
