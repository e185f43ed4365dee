"""What a model was built for, and whether a prompt belongs to it.

The universal model runs the VM program its prompt holds; a specialised model
runs the one program baked into its weights, and its prompt holds only the
input. Either model decodes the other's prompt without complaint, into
nonsense, so ``wasmformer run`` checks the pair first:

- a model says what it was built for in config.json (``built_for``, see
  ``wasmformer.model.BUILT_FOR_KEY``); models written before that key existed
  are recognised by the keys they do have;
- a prompt file may say which model it is for in a header comment
  (``runner.prompt_header``), and every prompt shows its layout at
  ``KIND_POSITION`` (docs/token-language.md).

Models of other machines (the graph-DSL examples) have no ``built_for`` and
are not checked here; their vocabulary check still applies.
"""

from __future__ import annotations

from wasmformer.engines.base import EngineError
from wasmformer.machine import tokens as T
from wasmformer.machine.prompt import layout_error
from wasmformer.model import BUILT_FOR_KEY, Model

UNIVERSAL, SPECIALISED = "universal", "specialised"
# config.json of a specialised model before ``built_for``: {"name": ..., "sha256": ...}
LEGACY_PROGRAM_KEY = "specialised_program"
# An older universal model is recognised by its config.json's "graph", the name of the machine's graph.
LEGACY_UNIVERSAL_GRAPH = T.UNIVERSAL_GRAPH_NAME

# Both prompt layouts open with <s> and the zero and ones slots; the next token
# is the universal header's <mem> slot or the specialised prompt's <input_bytes>.
KIND_POSITION = 1 + 2 * T.SLOT
KIND_MARKER = {UNIVERSAL: T.MEMORY, SPECIALISED: T.INPUT_BYTES}


class PromptMismatchError(EngineError):
    """A prompt made for another model (universal vs specialised, or another program)."""


def universal() -> dict:
    """``built_for`` of the universal model."""
    return {"kind": UNIVERSAL}


def specialised(program_name: str, sha256: str) -> dict:
    """``built_for`` of a model specialised for one program (``specialize.program_digest``)."""
    return {"kind": SPECIALISED, "program": program_name, "sha256": sha256}


def built_for(model: Model) -> dict | None:
    """What ``model`` runs: universal(), specialised(...), or None for a model of another machine."""
    explicit = model.extra.get(BUILT_FOR_KEY)
    if explicit is not None:
        return explicit
    legacy = model.extra.get(LEGACY_PROGRAM_KEY)
    if isinstance(legacy, dict) and isinstance(legacy.get("sha256"), str):
        return specialised(str(legacy.get("name", "")), legacy["sha256"])
    if model.extra.get("graph") == LEGACY_UNIVERSAL_GRAPH:
        return universal()
    return None


def prompt_layout(tokens: list[str]) -> str | None:
    """UNIVERSAL or SPECIALISED from the prompt's own tokens, or None when it is neither layout."""
    if len(tokens) <= KIND_POSITION or tokens[0] != T.START:
        return None
    marker = tokens[KIND_POSITION]
    return next((kind for kind, expected in KIND_MARKER.items() if marker == expected), None)


def check_prompt(model_for: dict | None, tokens: list[str], header: dict | None, origin: str,
                 model_name: str) -> None:
    """Refuse a prompt that does not belong to the model (PromptMismatchError naming both).

    ``header`` is what the prompt file's header says it is for (None: no
    header); the layout of ``tokens`` is checked either way.
    """
    if model_for is None:
        return
    kind = model_for.get("kind")
    model_says = _model_phrase(model_for, model_name)
    if header is not None and header.get("kind") != kind:
        raise PromptMismatchError(f"{origin}: the prompt is for a {header.get('kind')} model, but {model_says}")
    if header is not None and kind == SPECIALISED and header.get("sha256") != model_for.get("sha256"):
        raise PromptMismatchError(f"{origin}: the prompt is for a model specialised for another program, "
                                  f"but {model_says}")
    layout = prompt_layout(tokens)
    if kind in KIND_MARKER and layout != kind:
        found = (f"token {KIND_POSITION} is {tokens[KIND_POSITION]!r}" if len(tokens) > KIND_POSITION
                 else f"it has {len(tokens)} tokens")
        raise PromptMismatchError(f"{origin}: not a {kind} prompt ({found}, expected {KIND_MARKER[kind]!r}), "
                                  f"but {model_says}")
    problem = layout_error(tokens) if kind == UNIVERSAL else None
    if problem is not None:
        raise PromptMismatchError(f"{origin}: not a well-formed universal prompt: {problem}")


def _model_phrase(model_for: dict, model_name: str) -> str:
    if model_for.get("kind") == SPECIALISED:
        return f"{model_name} is specialised for program '{model_for.get('program', '?')}'"
    return f"{model_name} is the {model_for.get('kind')} model"
