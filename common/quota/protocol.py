"""Wire shapes of the quota service (msgpack over grpcio, see common/wire.py).

One unary method, `Sync`, carries everything a tier1 process has to say about the keys
owned by one replica, batched:

request  {"holder": str, "entries": [SyncEntry...]}
response {"entries": [Grant...], "holders": int, "now": float}

Entries are plain dicts with short field names, because one Sync can carry thousands.
`SyncEntry` fields:
  k  key (policy/limit/dimension/descriptor/window-start; opaque to the service)
  l  limit for the window (the holder's config; the newest value sent wins)
  e  window end, wall seconds (the service forgets the key after it)
  d  usage settled since the previous successful Sync (added to the consumed count)
  w  allotment wanted: in-flight reservations plus expected demand until the next Sync
  n  allotment needed now (in flight plus the next request); optional. Near the end of
     a budget the service hands out fair shares, but never less than this if it can
  p  1 if the counter must survive a service restart (windows of one hour or longer)
`Grant` fields:
  k  key
  a  allotment granted to this holder, absolute (replaces the previous one)
  r  remaining for everyone else after this grant: limit - consumed - all allotments
  t  allotment lifetime in seconds (renew before it runs out)
"""

from __future__ import annotations

from typing import Final, NotRequired, TypedDict

QUOTA_SERVICE: Final = "strata.quota.v1.Quota"
SYNC_METHOD: Final = f"/{QUOTA_SERVICE}/Sync"


class SyncEntry(TypedDict):
    k: str
    l: float  # noqa: E741 - wire field names are short on purpose
    e: float
    d: float
    w: float
    p: int
    n: NotRequired[float]


class Grant(TypedDict):
    k: str
    a: float
    r: float
    t: float
