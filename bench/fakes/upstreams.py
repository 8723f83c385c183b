"""Run fake upstreams on 127.0.0.1 in this process (tests) and get a handle on each.

async with fake_upstreams(["a", "b"], dialect="openai") as fakes:
    url = fakes["a"].url                      # "http://127.0.0.1:41001"
    ...                                       # point the code under test at it
    assert fakes["a"].requests[-1].json["model"] == "gpt-4o"
    fakes["a"].defaults = Script(status=503)  # script without headers
    fakes["a"].clear()

Dialects: ``openai``, ``azure``, ``anthropic``, ``bedrock``, ``gemini``, ``vertex``.
Per-dialect parameters:

- ``api_key``: the credential the client must present (see :func:`build_fake_app`);
  for ``vertex`` it is the OAuth access token (``Authorization: Bearer``);
- ``aws`` (bedrock): the :class:`AwsTestCredentials` (access key id, secret, region,
  optional session token) requests must be SigV4-signed with for service ``bedrock``;
  ``None`` uses ``AwsTestCredentials()``, whose values ``fake.aws`` gives back;
- ``gcp_project``/``gcp_location`` (vertex): the project and location the path must
  name (else 403 ``PERMISSION_DENIED``); ``None`` accepts any;
- ``models``: the models accepted (the body's ``model``, or the path's for Bedrock,
  Gemini and Vertex); ``None`` accepts any.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager

from aiohttp import web

from bench.fakes.app import FAKE_STATE, FakeState, build_fake_app
from bench.fakes.calls import Dialect
from bench.fakes.recording import RecordedRequest
from bench.fakes.script import Script
from bench.fakes.sigv4 import AwsTestCredentials

__all__ = ["FakeUpstream", "FakeUpstreams", "fake_upstreams", "start_fake"]


class FakeUpstream:
    """A running fake: its URL, what it received, and its default script."""

    def __init__(self, app: web.Application, runner: web.AppRunner, url: str) -> None:
        self.app = app
        self.url = url
        self._runner = runner

    @property
    def _state(self) -> FakeState:
        return self.app[FAKE_STATE]

    @property
    def name(self) -> str:
        return self._state.config.name

    @property
    def dialect(self) -> Dialect:
        return self._state.config.dialect

    @property
    def aws(self) -> AwsTestCredentials | None:
        """Bedrock: the credentials requests must be signed with."""
        return self._state.config.aws

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        return self._state.recorder.all()

    @property
    def last(self) -> RecordedRequest:
        items = self._state.recorder.all()
        if not items:
            raise LookupError(f"fake {self.name!r} has received no request")
        return items[-1]

    @property
    def in_flight(self) -> int:
        """Requests being answered now; a hung or stalled one counts until its client leaves."""
        return self._state.in_flight

    @property
    def disconnects(self) -> int:
        """Requests whose client went away before the answer was complete."""
        return self._state.disconnects

    @property
    def defaults(self) -> Script:
        """The script used when a request carries no scripting headers."""
        return self._state.defaults

    @defaults.setter
    def defaults(self, script: Script) -> None:
        self._state.defaults = script

    def clear(self) -> None:
        """Forget the recorded requests."""
        self._state.recorder.clear()

    async def close(self) -> None:
        await self._runner.cleanup()


class FakeUpstreams(Mapping[str, FakeUpstream]):
    """Running fakes by name."""

    def __init__(self, fakes: Mapping[str, FakeUpstream]) -> None:
        self._fakes = dict(fakes)

    def __getitem__(self, name: str) -> FakeUpstream:
        return self._fakes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fakes)

    def __len__(self) -> int:
        return len(self._fakes)

    def clear(self) -> None:
        for fake in self._fakes.values():
            fake.clear()

    async def close(self) -> None:
        for fake in self._fakes.values():
            await fake.close()


async def start_fake(
    name: str,
    dialect: Dialect = "openai",
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    defaults: Script | None = None,
    api_key: str | None = None,
    deployments: Mapping[str, str] | None = None,
    models: Sequence[str] | None = None,
    record_limit: int | None = None,
    reuse_port: bool = False,
    aws: AwsTestCredentials | None = None,
    gcp_project: str | None = None,
    gcp_location: str | None = None,
) -> FakeUpstream:
    """Build and serve one fake; ``port=0`` picks a free port. ``close()`` stops it."""
    app = build_fake_app(
        name,
        dialect,
        defaults=defaults,
        api_key=api_key,
        deployments=deployments,
        models=models,
        record_limit=record_limit,
        aws=aws,
        gcp_project=gcp_project,
        gcp_location=gcp_location,
    )
    # handler_cancellation: a hung or stalled handler ends as soon as its client leaves.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.25)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True, reuse_port=reuse_port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    return FakeUpstream(app, runner, f"http://{_host(bound[0])}:{bound[1]}")


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@asynccontextmanager
async def fake_upstreams(
    names: Sequence[str],
    dialect: Dialect = "openai",
    *,
    host: str = "127.0.0.1",
    defaults: Script | None = None,
    api_key: str | None = None,
    deployments: Mapping[str, str] | None = None,
    models: Sequence[str] | None = None,
    aws: AwsTestCredentials | None = None,
    gcp_project: str | None = None,
    gcp_location: str | None = None,
) -> AsyncIterator[FakeUpstreams]:
    """Serve one fake per name on ephemeral ports for the duration of the block."""
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate fake names in {list(names)}")
    started: dict[str, FakeUpstream] = {}
    try:
        for name in names:
            started[name] = await start_fake(
                name,
                dialect,
                host=host,
                defaults=defaults,
                api_key=api_key,
                deployments=deployments,
                models=models,
                aws=aws,
                gcp_project=gcp_project,
                gcp_location=gcp_location,
            )
        yield FakeUpstreams(started)
    finally:
        for fake in started.values():
            await fake.close()
