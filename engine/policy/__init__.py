"""Pure policy every door shares (no I/O): what admission decides about a message, from plain facts."""
