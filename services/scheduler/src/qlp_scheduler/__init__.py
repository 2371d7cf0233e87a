"""QLP GPU scheduler service."""
