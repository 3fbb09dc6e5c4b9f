"""Inference: the model catalog, model files (fetch, inventory, sha256 cache), the one session
factory, the one preprocessing implementation and the ModelRunner every model runs through."""
