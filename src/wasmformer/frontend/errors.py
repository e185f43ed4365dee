"""Errors the front end reports to users (never a traceback for a user mistake)."""


class FrontendError(Exception):
    """A source, module or input the front end refuses, with a located, human message."""
