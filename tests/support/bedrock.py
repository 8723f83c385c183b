"""Test helpers for the Bedrock translator: a deterministic translator, parsed requests,
and checks against botocore's `bedrock-runtime` service model (the authoritative shapes)."""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.eventstream import EventStream
from botocore.loaders import Loader
from botocore.model import OperationModel, ServiceModel
from botocore.parsers import EventStreamJSONParser
from botocore.validate import ParamValidator

from common import jsonutil
from common.clock import FakeClock
from tier1.http.parse import parse
from tier1.providers.base import Endpoint, ParsedRequest, UpstreamRequest
from tier1.providers.openai_bedrock import ChatToConverse

BASE = "https://bedrock-runtime.us-east-1.amazonaws.com"
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
CREATED = 1_767_225_600
COMPLETION_ID = "chatcmpl-test"


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CLOCK_TOOL = {"type": "function", "function": {"name": "now"}}


def translator(default_max_tokens: int = 4096) -> ChatToConverse:
    return ChatToConverse(BASE, default_max_tokens, clock=FakeClock(), new_id=lambda: COMPLETION_ID)


def parsed(body: dict[str, Any], endpoint: Endpoint = "chat") -> ParsedRequest:
    return parse(endpoint, jsonutil.dumps(body), {})


@cache
def service() -> ServiceModel:
    return ServiceModel(
        Loader().load_service_model("bedrock-runtime", "service-2"), "bedrock-runtime"
    )


def operation(name: str) -> OperationModel:
    return service().operation_model(name)


def assert_valid_request(up: UpstreamRequest, model_id: str, *, stream: bool) -> dict[str, Any]:
    """The URL is the operation's requestUri with the model id as one encoded segment,
    and the body (plus modelId) passes botocore's validator for the input shape."""
    op = operation("ConverseStream" if stream else "Converse")
    assert op.http["method"] == up.method
    path = op.http["requestUri"].replace("{modelId}", quote(model_id, safe=""))
    assert urlsplit(up.url).path == path
    body: dict[str, Any] = jsonutil.loads(up.body)
    assert "modelId" not in body  # a URI member: never in the body
    report = ParamValidator().validate({**body, "modelId": model_id}, op.input_shape)
    assert not report.has_errors(), report.generate_report()
    return body


def assert_valid_response(body: dict[str, Any]) -> None:
    """A Converse answer used as a fixture has the ConverseResponse shape."""
    report = ParamValidator().validate(body, operation("Converse").output_shape)
    assert not report.has_errors(), report.generate_report()


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self) -> list[bytes]:
        return [self.data]

    def close(self) -> None:
        pass


def botocore_events(data: bytes) -> list[dict[str, Any]]:
    """Decode a recorded ConverseStream the way boto3 does (proves the fixture is real);
    an exception event raises botocore's EventStreamError."""
    op = operation("ConverseStream")
    shape = op.output_shape.members["stream"]
    return list(EventStream(_Raw(data), shape, EventStreamJSONParser(), op.name))


def translate(body: dict[str, Any], model: str = MODEL) -> tuple[UpstreamRequest, dict[str, Any]]:
    req = parsed({"model": model, **body})
    up = translator().request(req, upstream_model=model, force_usage=True)
    return up, assert_valid_request(up, model, stream=req.stream)
