"""Fleet management over MQTT 5: availability, device-shadow configuration, commands,
telemetry (issue 8)."""
