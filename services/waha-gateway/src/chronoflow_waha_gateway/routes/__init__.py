"""The gateway's HTTP routes: WAHA sessions (API key) and WAHA's webhooks (HMAC)."""
