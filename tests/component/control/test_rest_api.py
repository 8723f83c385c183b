"""The operators' REST API against a real etcd: CRUD, CAS, dry run, validation, auth,
and that secrets never come back out (reads, errors, logs) nor reach etcd unhashed."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from common import jsonutil
from control.app import ControlServer
from control.store.etcd import EtcdStore
from tests.support.control_api import Api

pytestmark = pytest.mark.etcd

SECRET = "sk-provider-SECRET-value-123"


def backend(name: str = "openai", **spec: Any) -> dict[str, Any]:
    base = {
        "schema": "openai",
        "base_url": "https://api.openai.com/v1",
        "auth": {"type": "api_key", "key": SECRET},
    }
    return {"name": name, "spec": {**base, **spec}}


def route(name: str, models: list[str], backends: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "spec": {"match": {"models": models}, "backends": [{"name": b} for b in backends]},
    }


async def test_crud_and_list(api: Api) -> None:
    status, created = await api.call("POST", "/v1/backends", backend())
    assert status == 201 and created["kind"] == "Backend" and created["revision"] > 0
    status, got = await api.call("GET", "/v1/backends/openai")
    assert status == 200 and got["revision"] == created["revision"]
    await api.call("POST", "/v1/backends", backend("other"))
    status, listing = await api.call("GET", "/v1/backends")
    assert [i["name"] for i in listing["items"]] == ["openai", "other"]
    got["spec"]["timeouts"]["connect_s"] = 2.5
    status, replaced = await api.call("PUT", "/v1/backends/openai", got)
    assert status == 200 and replaced["spec"]["timeouts"]["connect_s"] == 2.5
    assert replaced["revision"] > created["revision"]
    status, deleted = await api.call("DELETE", "/v1/backends/other")
    assert status == 200 and deleted["deleted"]
    assert (await api.call("GET", "/v1/backends/other"))[0] == 404


async def test_create_twice_is_conflict(api: Api) -> None:
    await api.call("POST", "/v1/backends", backend())
    status, body = await api.call("POST", "/v1/backends", backend())
    assert status == 409 and body["error"]["code"] == "conflict"


async def test_stale_replace_is_409_with_current_revision(api: Api) -> None:
    _, first = await api.call("POST", "/v1/backends", backend())
    first["spec"]["timeouts"]["connect_s"] = 1
    _, second = await api.call("PUT", "/v1/backends/openai", first)
    first["spec"]["timeouts"]["connect_s"] = 3  # still carries the old revision
    status, body = await api.call("PUT", "/v1/backends/openai", first)
    assert status == 409 and body["error"]["current_revision"] == second["revision"]
    _, now = await api.call("GET", "/v1/backends/openai")
    assert now["spec"]["timeouts"]["connect_s"] == 1


async def test_replace_needs_revision(api: Api) -> None:
    await api.call("POST", "/v1/backends", backend())
    status, body = await api.call("PUT", "/v1/backends/openai", backend())
    assert status == 400 and body["error"]["param"] == "revision"


async def test_dry_run_stores_nothing(api: Api) -> None:
    status, body = await api.call("POST", "/v1/backends?dry_run=true", backend())
    assert status == 200 and body["name"] == "openai"
    assert (await api.call("GET", "/v1/backends/openai"))[0] == 404
    status, body = await api.call("POST", "/v1/routes?dry_run=true", route("r", ["m"], ["missing"]))
    assert status == 422


async def test_invalid_resource_is_422_with_field_path_and_nothing_stored(
    api: Api, control: ControlServer
) -> None:
    bad = backend(timeouts={"connect_s": -1})
    status, body = await api.call("POST", "/v1/backends", bad)
    assert status == 422
    assert body["error"]["errors"][0]["path"] == "spec.timeouts.connect_s"
    status, body = await api.call("POST", "/v1/routes", route("r", ["m"], ["nope"]))
    assert status == 422 and body["error"]["errors"][0]["path"] == "routes/r.spec.backends.0.name"
    items, _ = await control.store.range(control.keys.resources)
    assert [i.key for i in items if "_meta" not in i.key] == []


async def test_bad_bodies(api: Api) -> None:
    assert (await api.call("POST", "/v1/backends", raw=b"{not json"))[0] == 400
    assert (await api.call("POST", "/v1/backends", raw=b"[1]"))[0] == 400
    status, body = await api.call("POST", "/v1/backends", {**backend(), "kind": "Route"})
    assert status == 400 and body["error"]["param"] == "kind"
    status, body = await api.call("GET", "/v1/gadgets")
    assert status == 404 and "unknown resource type" in body["error"]["message"]


async def test_admin_token_required(api: Api) -> None:
    status, body = await api.call("GET", "/v1/backends", token="")
    assert status == 401 and "missing admin token" in body["error"]["message"]
    status, body = await api.call("GET", "/v1/backends", token="wrong")
    assert status == 401 and body["error"]["code"] == "invalid_token"
    status, _ = await api.call("POST", "/v1/backends", backend(), token="wrong")
    assert status == 401
    assert (await api.call("GET", "/v1/backends/openai"))[0] == 404  # nothing was written
    assert (await api.call("GET", "/healthz", token=""))[0] == 200


async def test_delete_in_use_is_refused(api: Api) -> None:
    await api.call("POST", "/v1/backends", backend())
    await api.call("POST", "/v1/routes", route("r", ["m"], ["openai"]))
    status, body = await api.call("DELETE", "/v1/backends/openai")
    assert status == 409 and "routes/r" in body["error"]["message"]


async def test_secrets_are_write_only(
    api: Api, control: ControlServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, created = await api.call("POST", "/v1/backends", backend())
    responses = [created]
    responses.append((await api.call("GET", "/v1/backends/openai"))[1])
    responses.append((await api.call("GET", "/v1/backends"))[1])
    # an error that involves the secret's resource
    responses.append((await api.call("POST", "/v1/backends", backend()))[1])
    responses.append(
        (await api.call("POST", "/v1/backends", backend("x", timeouts={"connect_s": -1})))[1]
    )
    # replace keeps the secret when the client sends the mask back
    got = responses[1]
    assert got["spec"]["auth"]["key"] == {"set": True}
    got["spec"]["timeouts"]["request_s"] = 30
    status, replaced = await api.call("PUT", "/v1/backends/openai", got)
    assert status == 200
    responses.append(replaced)
    for r in responses:
        assert SECRET not in jsonutil.dumps_str(r)
    assert SECRET not in caplog.text
    stored = await control.store.get(control.keys.resource("Backend", "openai"))
    assert stored is not None and SECRET.encode() in stored.value  # kept for the tiers
    # a mask with nothing behind it is refused, naming the field
    status, body = await api.call(
        "POST",
        "/v1/backends",
        {
            **backend("y"),
            "spec": {**backend()["spec"], "auth": {"type": "api_key", "key": {"set": True}}},
        },
    )
    assert status == 422 and body["error"]["errors"][0]["path"] == "spec.auth.key"


async def test_consumer_keys_stored_only_as_hashes(api: Api, control: ControlServer) -> None:
    await api.call("POST", "/v1/consumers", {"name": "team-a", "spec": {}})
    status, created = await api.call("POST", "/v1/consumers/team-a/keys", {})
    assert status == 201 and created["key"].startswith("sk-strata-")
    key = created["key"]
    items, _ = await control.store.range(control.keys.root)
    assert all(key.encode() not in i.value for i in items)
    _, consumer = await api.call("GET", "/v1/consumers/team-a")
    assert key not in jsonutil.dumps_str(consumer)
    assert consumer["spec"]["keys"][0]["hash"].startswith("sha256:")
    assert (await api.call("POST", "/v1/consumers/nobody/keys", {}))[0] == 404


async def test_apply_is_all_or_nothing_and_idempotent(api: Api) -> None:
    good = (
        "kind: Backend\nname: b\nspec: {schema: openai, base_url: 'http://127.0.0.1:9/v1'}\n---\n"
        "kind: Route\nname: r\nspec: {match: {models: [m]}, backends: [{name: b}]}\n"
    )
    bad = (
        good
        + "---\nkind: Route\nname: r2\nspec: {match: {models: [m2]}, backends: [{name: missing}]}\n"
    )
    status, body = await api.call("POST", "/v1/apply", raw=bad, content_type="application/yaml")
    assert status == 422
    assert (await api.call("GET", "/v1/backends/b"))[0] == 404
    status, body = await api.call("POST", "/v1/apply", raw=good, content_type="application/yaml")
    assert status == 200 and [r["action"] for r in body["results"]] == ["created", "created"]
    status, again = await api.call("POST", "/v1/apply", raw=good, content_type="application/yaml")
    assert [r["action"] for r in again["results"]] == ["unchanged", "unchanged"]
    assert again["results"][0]["revision"] == body["results"][0]["revision"]


async def test_two_replicas_share_one_store(make_control: Any) -> None:
    import aiohttp

    a: ControlServer = await make_control("a")
    b: ControlServer = await make_control("b")
    async with aiohttp.ClientSession() as s:
        api_a, api_b = Api(s, a.rest_url), Api(s, b.rest_url)
        await api_a.call("POST", "/v1/backends", backend())
        # b validates against a's write even before its own watch catches up
        status, _ = await api_b.call("POST", "/v1/routes", route("r", ["m"], ["openai"]))
        assert status == 201
        status, body = await api_a.call("DELETE", "/v1/backends/openai")
        assert status == 409


async def test_store_outage_is_503(api: Api, control: ControlServer) -> None:
    broken = EtcdStore(["127.0.0.1:1"], timeout_s=0.5)
    original = control.service.store
    control.service.store = broken
    try:
        status, body = await api.call("GET", "/v1/backends")
        assert status == 503 and "store is unavailable" in body["error"]["message"]
    finally:
        control.service.store = original
        await broken.close()
