"""WhatsApp message runs through the waha-gateway."""
