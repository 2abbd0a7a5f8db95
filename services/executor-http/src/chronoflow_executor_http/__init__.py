"""Signed, retried, SSRF-safe webhooks."""
