"""QLP billing and metering service."""
