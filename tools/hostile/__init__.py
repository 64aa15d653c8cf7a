"""Attack scripts that measure how the daemon holds up against hostile clients."""
