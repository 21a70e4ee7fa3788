"""Small shared helpers: atomic file output, JSON, image I/O."""
