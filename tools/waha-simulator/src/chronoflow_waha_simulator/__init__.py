"""A WAHA (WhatsApp HTTP API) simulator that follows WAHA's published contract."""
