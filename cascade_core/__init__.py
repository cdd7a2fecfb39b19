"""cascade_core: the framework-free selection core of cascade-router."""

__version__ = "0.1.0"
