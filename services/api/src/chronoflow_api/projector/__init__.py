"""The projector: its own durable consumer building the Postgres read models from the streams."""
