"""Vision: vehicle detection, text detection, scene signatures and the photo pipeline (models
run through edge_agent.inference; plates are edge_agent.plates)."""
