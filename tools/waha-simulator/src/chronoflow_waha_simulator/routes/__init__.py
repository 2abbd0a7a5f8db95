"""HTTP routes: WAHA's own (``/api``, ``/ping``) and the simulator's controls (``/_sim``)."""
