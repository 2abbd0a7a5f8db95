"""Shared wiring: settings, NATS streams, database, migrations, publishing, service runner."""
