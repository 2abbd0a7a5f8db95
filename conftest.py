"""Root pytest configuration: every test can ask for the real NATS and Postgres fixtures."""

pytest_plugins = ["chronoflow_devstack.pytest_plugin"]
