"""Firmware service for an AI conference camera."""

__version__ = "0.1.0"
