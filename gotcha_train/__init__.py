"""Training the project's Korean plate reader: synthetic plates, their fonts, the network.

Kept apart from ``edge_agent`` so that a device never imports it: it needs Pillow and Korean
fonts (and torch for training itself), installed with the ``train`` extra.
"""
