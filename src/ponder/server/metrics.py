"""Prometheus metrics, one registry per app (no process-wide state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ponder.usage import Usage


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ponder_requests", "HTTP requests by path and status", ["path", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.requests_in = Counter(
            "ponder_completion_requests", "Completion requests accepted for work",
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "ponder_request_seconds", "Request latency", ["path"], registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
        )  # fmt: skip
        self.tokens = Counter(
            "ponder_tokens", "Tokens spent, by kind", ["kind"], registry=self.registry
        )
        self.errors = Counter("ponder_errors", "Errors by kind", ["kind"], registry=self.registry)
        self.queue_depth = Gauge(
            "ponder_queue_depth", "Requests waiting for a slot", registry=self.registry
        )

    def observe(self, path: str, status: int, seconds: float) -> None:
        known = path if path.startswith("/v1/") or path in ("/health", "/metrics") else "other"
        self.requests.labels(known, str(status)).inc()
        self.latency.labels(known).observe(seconds)

    def count_tokens(self, usage: Usage) -> None:
        self.tokens.labels("prompt").inc(usage.prompt_tokens)
        self.tokens.labels("cached_prompt").inc(usage.cached_prompt_tokens)
        self.tokens.labels("completion").inc(usage.completion_tokens)

    def render(self) -> str:
        return generate_latest(self.registry).decode()
