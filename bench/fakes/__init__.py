"""Header-scripted fake upstream providers (OpenAI and Azure OpenAI dialects).

Tests start them in-process with :func:`fake_upstreams` (or serve
:func:`build_fake_app` with pytest-aiohttp); the benchmark runs
``python -m bench.fakes``. Requests script the answer with ``x-fake-<key>`` or
``x-fake-<instance>-<key>`` headers (:mod:`bench.fakes.script`), and every request is
recorded for assertions (:class:`RecordedRequest`).
"""

from bench.fakes.admission import Dialect, FakeConfig
from bench.fakes.app import FAKE_STATE, FakeState, build_fake_app
from bench.fakes.recording import RecordedRequest
from bench.fakes.script import Script, ScriptError, script_headers
from bench.fakes.upstreams import FakeUpstream, FakeUpstreams, fake_upstreams, start_fake

__all__ = [
    "FAKE_STATE",
    "Dialect",
    "FakeConfig",
    "FakeState",
    "FakeUpstream",
    "FakeUpstreams",
    "RecordedRequest",
    "Script",
    "ScriptError",
    "build_fake_app",
    "fake_upstreams",
    "script_headers",
    "start_fake",
]
