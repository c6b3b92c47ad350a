"""Data sets: EMIDEC-format folders and synthetic LGE phantoms."""
