"""MQTT status, events and heartbeats (optional; the agent works without a broker)."""
