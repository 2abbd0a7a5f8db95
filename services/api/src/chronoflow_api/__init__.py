"""REST gateway and projector."""
