"""The root of every error wasmformer raises on purpose: ``WasmformerError``.

A leaf module (it imports nothing of the package), so every layer's own error
class can derive from it without import cycles: the front end's
``ProgramError``, the engines' ``EngineError`` (and ``PrecisionHorizonError``),
the model format's ``ModelFormatError``, the graph compiler's ``GraphError``,
the exports' ``ExportError``. The Python API (``wasmformer.api``) documents
them; callers that only want "wasmformer refused" catch ``WasmformerError``.
Anything else escaping the package is a bug.
"""


class WasmformerError(Exception):
    """Something wasmformer refuses or cannot do, with a message meant for the user."""
