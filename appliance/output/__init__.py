"""Sinks: where processed frames go (web preview now; UVC gadget, codec, file later)."""
