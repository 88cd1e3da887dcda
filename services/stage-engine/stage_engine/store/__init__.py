"""Persistence of the stage engine: user states, offsets, outbox, dedup, aliases, watermarks."""
