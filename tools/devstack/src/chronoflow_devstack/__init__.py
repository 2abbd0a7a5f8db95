"""Embedded nats-server and PostgreSQL for make run and the tests."""
