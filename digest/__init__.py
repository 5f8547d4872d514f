"""paper-digest: a personal daily digest of new machine-learning papers."""

__version__ = "0.1.0"
