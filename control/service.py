"""ResourceService: validated, compare-and-swap writes of resources into the store, and
a watch-fed cache of the whole configuration for validation and compilation.

Every write also bumps one generation key in the same transaction and compares its
revision with what the cache has seen. So a write is validated against exactly the
configuration it lands on: two replicas racing to create a route and delete its backend
cannot both win. A lost race re-reads the store and validates again, invisibly to the
client unless its own resource changed (then 409).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from common import jsonutil
from common.config import (
    KINDS,
    ConfigSet,
    Resource,
    parse_resource,
    to_stored,
    validate_config,
    with_revision,
)
from common.config.validate import referrers
from common.errors import Conflict, NotFound, Unavailable, ValidationFailed
from common.tasks import guarded_task
from control.secrets import restore_masked
from control.store.base import Compacted, Compare, ConfigStore, Delete, Item, Put, WatchEvent

log = logging.getLogger(__name__)

MAX_WRITE_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Keys:
    root: str = "/strata/"

    @property
    def resources(self) -> str:
        return f"{self.root}v1/"

    @property
    def generation(self) -> str:
        return f"{self.root}v1/_meta/generation"

    @property
    def status(self) -> str:
        return f"{self.root}status/"

    def resource(self, kind: str, name: str) -> str:
        return f"{self.root}v1/{kind.lower()}/{name}"

    @property
    def ratelimit_members(self) -> str:
        """Quota replicas register here under leases: <replica id> = host:port."""
        return f"{self.root}ratelimit/members/"

    @property
    def ratelimit_counters(self) -> str:
        """Checkpointed long-window quota counters."""
        return f"{self.root}ratelimit/counters/"


_KIND_BY_SEGMENT = {k.lower(): k for k in KINDS}


RawDoc = dict[str, object]


@dataclass(frozen=True, slots=True)
class Change:
    resource: Resource | RawDoc
    """A parsed resource, or a raw document that may carry {"set": true} secret masks."""
    mode: Literal["create", "replace", "apply"]
    expect: int | None = None

    def kind_and_name(self) -> tuple[str, str]:
        if isinstance(self.resource, dict):
            kind, name = self.resource.get("kind"), self.resource.get("name")
            if kind not in KINDS or not isinstance(name, str):
                parse_resource(self.resource)  # raises the precise ValidationFailed
            return str(kind), str(name)
        return self.resource.kind, self.resource.name


@dataclass(frozen=True, slots=True)
class WriteResult:
    resource: Resource
    changed: bool
    """False when the stored resource already had this content (no write happened)."""


class ResourceService:
    def __init__(self, store: ConfigStore, keys: Keys | None = None) -> None:
        self.store = store
        self.keys = keys or Keys()
        self._resources: dict[str, Resource] = {}  # store key -> parsed resource
        self._generation_rev = 0
        self.revision = 0
        self._watch_from = 0
        """Store revision of the last full read; watches resume after it."""
        """Revision of the newest configuration change the cache holds."""
        self._listeners: list[Callable[[], None]] = []
        self._watch_task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.ready = asyncio.Event()

    # -- cache ---------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[], None]) -> None:
        """`listener()` runs after each change to the cached configuration."""
        self._listeners.append(listener)

    def config(self) -> ConfigSet:
        return ConfigSet.of(self._resources.values())

    def _parse(self, key: str, value: bytes, revision: int) -> Resource | None:
        segment = key.removeprefix(self.keys.resources).split("/", 1)[0]
        if segment not in _KIND_BY_SEGMENT:
            return None
        try:
            return with_revision(parse_resource(jsonutil.loads(value)), revision)
        except (ValidationFailed, ValueError):
            # written by a newer control version or by hand; keep serving the rest
            log.error("ignoring unreadable resource at %s (revision %d)", key, revision)
            return None

    def _load(self, items: list[Item]) -> None:
        self._resources = {}
        self._generation_rev = 0
        revision = 0
        for item in items:
            revision = max(revision, item.mod_revision)
            if item.key == self.keys.generation:
                self._generation_rev = item.mod_revision
                continue
            r = self._parse(item.key, item.value, item.mod_revision)
            if r is not None:
                self._resources[item.key] = r
        self.revision = max(self.revision, revision)
        self._notify()

    def _apply_event(self, ev: WatchEvent) -> None:
        if ev.key == self.keys.generation:
            self._generation_rev = max(self._generation_rev, ev.revision)
        elif ev.kind == "delete":
            current = self._resources.get(ev.key)
            if current is not None and (current.revision or 0) <= ev.revision:
                del self._resources[ev.key]
        else:
            current = self._resources.get(ev.key)
            if current is None or (current.revision or 0) < ev.revision:
                r = self._parse(ev.key, ev.value, ev.revision)
                if r is not None:
                    self._resources[ev.key] = r
        if ev.revision > self.revision:
            self.revision = ev.revision
            self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()

    async def resync(self) -> None:
        items, read_revision = await self.store.range(self.keys.resources)
        self._load(items)
        # watch on from the read, not from the newest resource: history between the two
        # may be compacted already (status writes keep the store's revision moving)
        self._watch_from = max(self._watch_from, read_revision)

    async def start(self) -> None:
        await self.resync()
        self.ready.set()
        await self.start_watch_only()

    async def start_watch_only(self) -> None:
        """(Re)start following the store from the cache's revision."""
        self._watch_task = guarded_task(self._watch(), "resource-watch")

    async def _watch(self) -> None:
        while True:
            try:
                async for ev in self.store.watch(
                    self.keys.resources, start_revision=max(self.revision, self._watch_from) + 1
                ):
                    self._apply_event(ev)
            except Compacted:
                log.warning("config history compacted; resyncing from a full read")
                await self._resync_forever()
            except Exception:
                log.exception("config watch failed; resyncing")
                await asyncio.sleep(0.5)
                await self._resync_forever()

    async def _resync_forever(self) -> None:
        while True:
            try:
                await self.resync()
                return
            except Exception as e:
                log.warning("resync failed (%s); retrying", e)
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            try:
                await self._watch_task
            except (asyncio.CancelledError, Exception):
                pass
            self._watch_task = None

    # -- reads (straight from the store: read-your-writes on any replica) -----------------
    async def list_kind(self, kind: str) -> list[Resource]:
        items, _ = await self.store.range(f"{self.keys.resources}{kind.lower()}/")
        out = [self._parse(i.key, i.value, i.mod_revision) for i in items]
        return [r for r in out if r is not None]

    async def get(self, kind: str, name: str) -> Resource:
        item = await self.store.get(self.keys.resource(kind, name))
        r = self._parse(item.key, item.value, item.mod_revision) if item else None
        if r is None:
            raise NotFound(f"{kind} {name!r} does not exist")
        return r

    # -- writes ----------------------------------------------------------------------------
    async def create(self, resource: Resource | RawDoc, *, dry_run: bool = False) -> WriteResult:
        return (await self.write([Change(resource, "create")], dry_run=dry_run))[0]

    async def replace(
        self, resource: Resource | RawDoc, *, expect: int | None, dry_run: bool = False
    ) -> WriteResult:
        """`expect` is the revision the client read; a different current one is a 409."""
        return (await self.write([Change(resource, "replace", expect)], dry_run=dry_run))[0]

    async def apply(self, resources: list[Resource], *, dry_run: bool = False) -> list[WriteResult]:
        """Create or replace each, all in one transaction; unchanged ones are no-ops."""
        return await self.write([Change(r, "apply") for r in resources], dry_run=dry_run)

    async def write(self, changes: list[Change], *, dry_run: bool = False) -> list[WriteResult]:
        """Validate the changes together against the configuration they land on and
        commit them atomically: either all are stored or none."""
        async with self._write_lock:
            for _ in range(MAX_WRITE_ATTEMPTS):
                try:
                    result = await self._try_write(changes, dry_run=dry_run)
                except (ValidationFailed, Conflict, NotFound):
                    # judged on the cache: make sure it was not just behind another replica
                    if await self._cache_is_current():
                        raise
                    result = None
                if result is not None:
                    return result
                await self.resync()
        raise Unavailable("the configuration is changing too fast to write; retry")

    async def delete(
        self, kind: str, name: str, *, expect: int | None = None, dry_run: bool = False
    ) -> int:
        async with self._write_lock:
            for _ in range(MAX_WRITE_ATTEMPTS):
                try:
                    rev = await self._try_delete(kind, name, expect=expect, dry_run=dry_run)
                except (Conflict, NotFound):
                    if await self._cache_is_current():
                        raise
                    rev = None
                if rev is not None:
                    return rev
                await self.resync()
        raise Unavailable("the configuration is changing too fast to delete; retry")

    async def _cache_is_current(self) -> bool:
        item = await self.store.get(self.keys.generation)
        return (item.mod_revision if item else 0) == self._generation_rev

    async def _try_delete(
        self, kind: str, name: str, *, expect: int | None, dry_run: bool
    ) -> int | None:
        key = self.keys.resource(kind, name)
        cfg = self.config()
        existing = cfg.get(kind, name)
        if existing is None:
            raise NotFound(f"{kind} {name!r} does not exist")
        if expect is not None and existing.revision != expect:
            raise Conflict(
                f"{kind} {name!r} is at revision {existing.revision}, not {expect}; read it again",
                current_revision=existing.revision,
            )
        users = referrers(cfg, kind, name)
        if users:
            raise Conflict(
                f"{kind} {name!r} is still used by {', '.join(users)}; change those first"
            )
        if dry_run:
            return existing.revision or 0
        rev = await self.store.commit(
            [
                Compare(key, existing.revision or 0),
                Compare(self.keys.generation, self._generation_rev),
            ],
            [Delete(key), Put(self.keys.generation, b"")],
        )
        if rev is not None:
            self._resources.pop(key, None)
            self._apply_event(WatchEvent("put", self.keys.generation, b"", rev))
        return rev

    async def _try_write(self, changes: list[Change], *, dry_run: bool) -> list[WriteResult] | None:
        cfg = self.config()
        candidate = cfg
        compares = [Compare(self.keys.generation, self._generation_rev)]
        puts: list[Put] = []
        results: list[WriteResult] = []
        pending: list[tuple[int, str, Resource]] = []
        for change in changes:
            kind, name = change.kind_and_name()
            existing = cfg.get(kind, name)
            if change.mode == "create" and existing is not None:
                raise Conflict(
                    f"{kind} {name!r} already exists", current_revision=existing.revision
                )
            if change.mode == "replace" and existing is None:
                raise NotFound(f"{kind} {name!r} does not exist; create it first")
            if (
                change.expect is not None
                and existing is not None
                and existing.revision != change.expect
            ):
                raise Conflict(
                    f"{kind} {name!r} is at revision {existing.revision}, not {change.expect}; read it again",
                    current_revision=existing.revision,
                )
            stored_view = to_stored(existing) if existing is not None else None
            incoming = change.resource
            if isinstance(incoming, dict):
                incoming = parse_resource(restore_masked(dict(incoming), stored_view))
            resource = with_revision(incoming, None)
            new_value = to_stored(resource)
            if existing is not None and stored_view == new_value:
                results.append(WriteResult(existing, changed=False))
                continue
            candidate = candidate.replaced(resource)
            key = self.keys.resource(kind, name)
            compares.append(Compare(key, existing.revision or 0 if existing else 0))
            puts.append(Put(key, jsonutil.dumps(new_value)))
            pending.append((len(results), key, resource))
            results.append(
                WriteResult(
                    with_revision(resource, existing.revision if existing else None),
                    changed=not dry_run,
                )
            )
        if not puts:
            return results
        validate_config(candidate)  # raises ValidationFailed naming what to fix
        if dry_run:
            return results
        rev = await self.store.commit(compares, [*puts, Put(self.keys.generation, b"")])
        if rev is None:
            return None
        for index, key, resource in pending:
            stored = with_revision(resource, rev)
            self._resources[key] = stored
            results[index] = WriteResult(stored, changed=True)
        self._apply_event(WatchEvent("put", self.keys.generation, b"", rev))
        return results
