"""Vision: vehicle detection, plate location, plate reading, scene signatures (models run
through edge_agent.inference)."""
