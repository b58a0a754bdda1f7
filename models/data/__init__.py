"""Data sources for training: ``chars`` (tiny Shakespeare, character level)."""
