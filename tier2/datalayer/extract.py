"""Prometheus text exposition → EndpointMetrics, reading only the families we need (pure).

A vLLM `/metrics` page is mostly histogram buckets the picker never reads, so the parser
is a line filter, not a Prometheus parser: a line is looked at only if it starts with one
of the wanted family names (`str.startswith` with a tuple, in C), and everything else,
comments included, is skipped at that cost. Each kept sample is then matched on its
exact name, so `vllm:prefix_cache_queries_created` never counts as the counter.

Rules (inference-picking.md §1):
- A family that is absent, or whose every sample is garbled, is None ("unknown"), never 0.
- Several series of one family (data-parallel ranks: one `engine` label each) are summed
  for counts and counters and averaged for KV usage; `num_gpu_blocks` is summed.
- Counters are read under their name with or without `_total`.
- `cache_config_info` is an info gauge: block size and block count come from its labels.
- `lora_requests_info` gets a new series per label combination and its value is the time
  it was last set, so the series with the largest value is the current one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from tier2.datalayer.types import EndpointMetrics, MetricMapping

_LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_ESCAPE_RE = re.compile(r"\\[\\\"n]")

_WAITING, _RUNNING, _KV, _CACHE, _LORA, _QUERIES, _HITS = range(7)


@dataclass(frozen=True, slots=True)
class _Plan:
    prefixes: tuple[str, ...]
    fields: Mapping[str, int]
    """Exact sample name → field code."""


@lru_cache(maxsize=16)
def _plan(mapping: MetricMapping) -> _Plan:
    fields: dict[str, int] = {
        mapping.waiting: _WAITING,
        mapping.running: _RUNNING,
        mapping.kv_usage: _KV,
    }
    if mapping.cache_config:
        fields[mapping.cache_config] = _CACHE
    if mapping.lora_info:
        fields[mapping.lora_info] = _LORA
    for name, code in ((mapping.prefix_queries, _QUERIES), (mapping.prefix_hits, _HITS)):
        if name:
            base = name.removesuffix("_total")
            fields[base] = fields[base + "_total"] = code
    return _Plan(tuple(sorted(fields, key=len)), fields)


def _labels(text: str) -> dict[str, str]:
    return {
        k: _ESCAPE_RE.sub(lambda m: _UNESCAPE[m.group(0)], v) for k, v in _LABEL_RE.findall(text)
    }


def _split(line: str) -> tuple[str, str, str] | None:
    """(name, label text, value text) of a sample line, or None if it is malformed."""
    brace = line.find("{")
    space = line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        close = line.rfind("}")
        if close < brace:
            return None
        rest = line[close + 1 :].split()
        return (line[:brace], line[brace + 1 : close], rest[0]) if rest else None
    parts = line.split()
    return (parts[0], "", parts[1]) if len(parts) >= 2 else None


def _adapters(value: str | None) -> tuple[str, ...]:
    return tuple(a for a in (s.strip() for s in (value or "").split(",")) if a)


def _int_label(labels: Mapping[str, str], name: str) -> int | None:
    try:
        return int(labels[name])
    except (KeyError, ValueError):
        return None


class _Acc:
    """Running totals of one parse."""

    __slots__ = ("block_size", "cache_seen", "kv", "lora", "num_blocks", "sums")

    def __init__(self) -> None:
        self.sums: dict[int, float] = {}
        self.kv: list[float] = []
        self.block_size: int | None = None
        self.num_blocks: int | None = None
        self.cache_seen = False
        self.lora: tuple[float, dict[str, str]] | None = None

    def add(self, code: int, label_text: str, value: float, mapping: MetricMapping) -> None:
        if code == _KV:
            self.kv.append(min(1.0, max(0.0, value)))
        elif code == _CACHE:
            labels = _labels(label_text)
            size = _int_label(labels, mapping.block_size_label)
            blocks = _int_label(labels, mapping.num_blocks_label)
            if size is not None and size > 0 and self.block_size is None:
                self.block_size = size
            if blocks is not None and blocks > 0:
                self.num_blocks = (self.num_blocks or 0) + blocks
        elif code == _LORA:
            if self.lora is None or value > self.lora[0]:
                self.lora = (value, _labels(label_text))
        elif value >= 0:
            self.sums[code] = self.sums.get(code, 0.0) + value

    def count(self, code: int) -> int | None:
        v = self.sums.get(code)
        return None if v is None else round(v)


def parse(text: str | bytes, mapping: MetricMapping, scraped_at: float) -> EndpointMetrics:
    """The metrics of one scrape; families that are missing or garbled are None."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    plan = _plan(mapping)
    prefixes, fields = plan.prefixes, plan.fields
    acc = _Acc()
    for line in text.split("\n"):
        if not line.startswith(prefixes):
            continue
        parts = _split(line.rstrip("\r"))
        if parts is None:
            continue
        code = fields.get(parts[0])
        if code is None:
            continue
        try:
            value = float(parts[2])
        except ValueError:
            continue
        if math.isfinite(value):
            acc.add(code, parts[1], value, mapping)
    lora_labels = acc.lora[1] if acc.lora else None
    return EndpointMetrics(
        scraped_at=scraped_at,
        waiting=acc.count(_WAITING),
        running=acc.count(_RUNNING),
        kv_usage=sum(acc.kv) / len(acc.kv) if acc.kv else None,
        block_size=acc.block_size,
        num_gpu_blocks=acc.num_blocks,
        running_loras=_adapters(lora_labels.get("running_lora_adapters")) if lora_labels else None,
        waiting_loras=_adapters(lora_labels.get("waiting_lora_adapters")) if lora_labels else None,
        max_lora=_int_label(lora_labels, "max_lora") if lora_labels else None,
        prefix_queries=acc.sums.get(_QUERIES),
        prefix_hits=acc.sums.get(_HITS),
    )


def missing_families(metrics: EndpointMetrics, mapping: MetricMapping) -> tuple[str, ...]:
    """Names of the mapped families a scrape did not yield (for a log line or a metric)."""
    checks = (
        (mapping.waiting, metrics.waiting),
        (mapping.running, metrics.running),
        (mapping.kv_usage, metrics.kv_usage),
        (mapping.cache_config, metrics.num_gpu_blocks),
        (mapping.lora_info, metrics.running_loras),
        (mapping.prefix_queries, metrics.prefix_queries),
        (mapping.prefix_hits, metrics.prefix_hits),
    )
    return tuple(name for name, value in checks if name and value is None)
