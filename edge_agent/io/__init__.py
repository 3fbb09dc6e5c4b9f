"""Photo input: decoding, EXIF time and place, sources (files, folders, camera)."""
