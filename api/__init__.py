"""The HTTP surface: routes, schemas, limits, the answer cache and the app factory. Nothing here knows
how an answer is produced."""

__version__ = "0.1.0"
