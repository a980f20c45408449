"""Prometheus metrics, one registry per app (no process-wide state)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ponder.usage import Usage

ENDPOINTS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics"}
)


class Metrics:
    def __init__(self, waiting: Callable[[], float], running: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ponder_http_requests", "HTTP requests by endpoint and status",
            ["endpoint", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "ponder_http_request_seconds", "Time from request to the end of the response",
            ["endpoint"], registry=self.registry,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
        )  # fmt: skip
        self.completions = Counter(
            "ponder_completions", "Completion requests answered, by strategy",
            ["strategy"], registry=self.registry,
        )  # fmt: skip
        self.tokens = Counter(
            "ponder_tokens", "Tokens spent, by kind (reasoning: completion tokens not returned)",
            ["kind"], registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "ponder_errors", "Error responses by kind", ["kind"], registry=self.registry
        )
        Gauge(
            "ponder_queue_depth", "Requests waiting for a slot", registry=self.registry
        ).set_function(waiting)
        Gauge("ponder_running", "Requests being worked on", registry=self.registry).set_function(
            running
        )

    def observe(self, path: str, status: int, seconds: float) -> None:
        endpoint = path if path in ENDPOINTS else "other"
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def answered(self, strategy: str, usage: Usage, reasoning_tokens: int) -> None:
        self.completions.labels(strategy).inc()
        self.tokens.labels("prompt").inc(usage.prompt_tokens)
        self.tokens.labels("cached_prompt").inc(usage.cached_prompt_tokens)
        self.tokens.labels("completion").inc(usage.completion_tokens)
        self.tokens.labels("reasoning").inc(reasoning_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
