"""Token strings as an id array, so that multi-million-token traces compare quickly and report where they differ."""

import numpy as np


def token_ids(model, tokens: list[str]) -> np.ndarray:
    ids = model.token_ids
    return np.fromiter((ids[token] for token in tokens), dtype=np.int32, count=len(tokens))
