"""QLP generation service."""
