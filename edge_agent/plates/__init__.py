"""Korean plates: where they are in a photo, how they are read, and what a read means."""
