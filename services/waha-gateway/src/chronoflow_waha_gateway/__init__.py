"""WAHA sessions, webhooks and paced sends."""
