"""Header-scripted fake upstream providers.

Dialects (:data:`Dialect`): ``openai``, ``azure`` (Azure OpenAI), ``anthropic`` (the
Messages API), ``bedrock`` (Converse/ConverseStream and InvokeModel for Anthropic models,
SigV4-verified with botocore against :class:`AwsTestCredentials`, event-stream framed
streams), ``gemini`` (the Gemini API) and ``vertex`` (Vertex AI: Gemini models and
Anthropic models by ``rawPredict``). Each checks the request against the provider's
documented shape: :mod:`~bench.fakes.openai_shapes`, the ``anthropic`` SDK's types
(:mod:`~bench.fakes.anthropic_shapes`), botocore's bedrock-runtime model
(:mod:`~bench.fakes.bedrock_shapes`), Google's API reference
(:mod:`~bench.fakes.gemini_shapes`).

Tests start them in-process with :func:`fake_upstreams` / :func:`start_fake` (or serve
:func:`build_fake_app` with pytest-aiohttp); the benchmark runs
``python -m bench.fakes``. Requests script the answer with ``x-fake-<key>`` or
``x-fake-<instance>-<key>`` headers (:mod:`bench.fakes.script`), the same keys for every
dialect, and every request is recorded for assertions (:class:`RecordedRequest`).
"""

from bench.fakes.app import FAKE_STATE, FakeState, build_fake_app
from bench.fakes.calls import Dialect, FakeConfig
from bench.fakes.recording import RecordedRequest
from bench.fakes.script import Script, ScriptError, script_headers
from bench.fakes.sigv4 import AwsTestCredentials
from bench.fakes.upstreams import FakeUpstream, FakeUpstreams, fake_upstreams, start_fake

__all__ = [
    "FAKE_STATE",
    "AwsTestCredentials",
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
