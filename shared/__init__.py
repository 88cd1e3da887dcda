"""Contracts and helpers shared by the Lifecycle services.

Nothing here reads the environment or opens a connection at import time:
each service builds its settings and clients in its entry point and passes
them down.
"""
