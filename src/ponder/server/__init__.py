"""An OpenAI-compatible HTTP server that applies a strategy to any backend."""
