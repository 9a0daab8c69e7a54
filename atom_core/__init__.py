"""ATOM core: services, stores and interfaces of the ATOM agent platform."""

__version__ = "0.1.0"
