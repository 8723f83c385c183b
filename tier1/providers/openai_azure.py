"""OpenAI ingress → Azure OpenAI: deployment URL plus `api-version`; the deployment is
the upstream model name."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from tier1.providers import _openai_common as oa
from tier1.providers.base import ParsedRequest
from tier1.providers.openai_openai import OpenAIPassthrough


@dataclass(frozen=True, slots=True)
class AzureOpenAI(OpenAIPassthrough):
    api_version: str = "2024-10-21"

    def url(self, req: ParsedRequest, upstream_model: str) -> str:
        # https://learn.microsoft.com/azure/ai-services/openai/reference: the deployment
        # is in the path and api-version is a required query parameter
        return (
            f"{self.base_url}/openai/deployments/{quote(upstream_model, safe='')}"
            f"{oa.PATHS[req.endpoint]}?api-version={quote(self.api_version, safe='')}"
        )
