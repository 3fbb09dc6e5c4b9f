"""Korean plates: where they are in a photo, how they are read, and what a read means.

locate (find and straighten plates; deskew), recogniser (a plain CTC model run and greedy
decode: the only place the reader's model session is opened and run), reader (the Korean
reading on top: looks, colour, region_prior, ctc_decode's plate grammar, set up by options),
text (a read's tokens to a PlateRead, with one confidence per character of the plate). How
sure a read must be is the config's [plates] section (edge_agent.config.PlatesConfig).
"""
