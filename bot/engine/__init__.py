"""Rule files and the pure evaluation of series against them (no I/O, no clock)."""
