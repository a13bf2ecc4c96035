"""stackcrate: build and run your own OpenStack distribution."""

__version__ = "0.1.0"
