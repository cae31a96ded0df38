"""Command groups of the ``labkit`` CLI; each module exposes ``register(subparsers)``."""
