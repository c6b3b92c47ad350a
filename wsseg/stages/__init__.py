"""Pipeline stages: one function per step, cache in, cache out."""
