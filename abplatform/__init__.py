"""abplatform: offline-to-online A/B experimentation for search rankers."""

__version__ = "0.1.0"
