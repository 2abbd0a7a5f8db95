"""One durable delayed message per active chrono."""
