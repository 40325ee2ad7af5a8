"""HTTP API, server-sent events and Prometheus metrics."""
