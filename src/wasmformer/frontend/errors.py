"""Errors the front end reports to users (never a traceback for a user mistake)."""

from wasmformer.vm.errors import ProgramError


class FrontendError(ProgramError):
    """A source, module or input the front end refuses, with a located, human message."""
