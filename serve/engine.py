"""The model side of serving: load the bundle, batch rows of any task into one model batch (actors.collate,
training's code), run the heads in bf16 where the CPU has it, and the attributions (model.explain).
The backbone deployment (serve/deployments.py) and the plain-FastAPI baseline (serve/baseline_app.py) both
call this module, so they answer identically.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from actors.collate import BatchLayout, collate
from model.bundle import WEIGHTS_FILE, load_bundle
from model.explain import explain
from model.precision import cpu_supports_bf16
from serve.preprocess import Preprocessor, Row

EVAL_FILE = "eval_results.json"
MODALITIES = ("text", "image", "tabular", "series")


def bf16_supported() -> bool:
    """True when the CPU has native bfloat16 matmuls (AMX or AVX512-BF16) that oneDNN can use."""
    return cpu_supports_bf16()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------- batching
def collate_rows(rows: list[Row], layout: BatchLayout) -> dict:
    """Rows of any tasks -> one model batch. Each row is collated by actors.collate (training's code), then
    the single-row batches are padded to the union of modalities: a modality a row lacks is masked out
    (text attention 0, image/tabular present False, series mask False), which the model treats as absent."""
    singles = [collate({k: [v] for k, v in r.columns.items()}, layout, r.dataset) for r in rows]
    return merge_batches(singles)


def merge_batches(batches: list[dict]) -> dict:
    out: dict = {}
    sizes = [next(iter(b.values()))[next(iter(next(iter(b.values()))))].shape[0] for b in batches]
    present = {m for b in batches for m in b if m in MODALITIES}
    for m in MODALITIES:
        if m not in present:
            continue
        ref = next(b[m] for b in batches if m in b)
        if m == "text":
            width = max(b["text"]["input_ids"].shape[1] for b in batches if "text" in b)
            ids, att = [], []
            for b, n in zip(batches, sizes, strict=True):
                i = b["text"]["input_ids"] if "text" in b else torch.zeros(n, 1, dtype=torch.long)
                a = b["text"]["attention_mask"] if "text" in b else torch.zeros(n, 1, dtype=torch.long)
                pad = width - i.shape[1]
                ids.append(torch.nn.functional.pad(i, (0, pad)))
                att.append(torch.nn.functional.pad(a, (0, pad)))
            out["text"] = {"input_ids": torch.cat(ids), "attention_mask": torch.cat(att)}
            continue
        absent = {"present": False, "mask": False, "numeric_missing": True}
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in ref}
        for b, n in zip(batches, sizes, strict=True):
            for k, t in ref.items():
                if m in b:
                    parts[k].append(b[m][k])
                else:
                    fill = absent.get(k, 0)
                    parts[k].append(torch.full((n, *t.shape[1:]), fill, dtype=t.dtype))
        out[m] = {k: torch.cat(v) for k, v in parts.items()}
    return out


# ------------------------------------------------------------------------------------------ model
class Engine:
    """A loaded bundle: model in eval mode, its preprocessing, and batched inference + attributions."""

    def __init__(self, model_dir: str | Path, bf16: bool = True, explain_method: str = "integrated_gradients",
                 explain_steps: int = 8):
        self.model_dir = Path(model_dir)
        bundle = load_bundle(self.model_dir)
        self.model = bundle.model.eval()
        self.config = bundle.config
        self.pre = Preprocessor(self.model_dir)
        self.layout = BatchLayout.from_dict(self.pre.layout_dict)
        self.bf16 = bool(bf16 and bf16_supported())
        self.explain_method, self.explain_steps = explain_method, explain_steps
        self.heads = list(self.model.heads.keys())

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16)

    def forward(self, rows: list[Row], heads: list[str]) -> list[dict[str, Any]]:
        """One forward pass over all rows; row i gets heads[i]'s outputs as numpy (probs, and embedding)."""
        batch = collate_rows(rows, self.layout)
        with torch.inference_mode(), self.autocast():
            out = self.model(batch)
        results = []
        for i, head in enumerate(heads):
            res = {"probs": out[head]["probs"][i].float().numpy()}
            if "embedding" in out[head]:
                res["embedding"] = out[head]["embedding"][i].float().numpy()
            results.append(res)
        return results

    def attribute(self, rows: list[Row], head: str, target: list[int] | None = None) -> list[dict[str, Any]]:
        """Attributions of head's probability for rows of one head: per modality total, per word, per
        tabular feature (reason codes)."""
        batch = collate_rows(rows, self.layout)
        width = batch["text"]["input_ids"].shape[1] if "text" in batch else 0
        token_strings = [(r.tokens or []) + ["[PAD]"] * (width - len(r.tokens or [])) for r in rows] if width else None
        tgt = torch.tensor(target) if target is not None else None
        with self.autocast():
            exp = explain(self.model, batch, head, target=tgt, method=self.explain_method, steps=self.explain_steps,
                          token_strings=token_strings)
        results = []
        for i in range(len(rows)):
            res: dict[str, Any] = {
                "modalities": {m: float(t[i].float().sum()) for m, t in exp.tokens.items() if _has(batch, m, i)},
            }
            if exp.words is not None and rows[i].tokens:
                res["words"] = [(w, float(s)) for w, s in exp.words[i]]
            if exp.tabular is not None and rows[i].dataset is not None:
                res["tabular"] = {n: float(v) for n, v in zip(exp.feature_names, exp.tabular[i].float().tolist(),
                                                              strict=False) if n.startswith(f"{rows[i].dataset}.")}
            results.append(res)
        return results

    def info(self) -> dict:
        weights = self.model_dir / WEIGHTS_FILE
        evals = self.model_dir / EVAL_FILE
        evaluation = json.loads(evals.read_text()) if evals.exists() else {}
        trained = evaluation.get("date") if isinstance(evaluation, dict) else None
        if not trained:
            trained = datetime.fromtimestamp(weights.stat().st_mtime, UTC).isoformat()
        return {
            "name": self.model_dir.name,
            "version": _version(),
            "architecture": type(self.model).__name__,
            "heads": self.heads,
            "checkpoint_sha256": sha256_file(weights),
            "trained_at": trained,
            "evaluation": evaluation,
            "bf16": self.bf16,
            "explain_method": self.explain_method,
        }


def _has(batch: dict, m: str, i: int) -> bool:
    flag = {"text": ("attention_mask",), "image": ("present",), "tabular": ("present",), "series": ("mask",)}[m][0]
    return bool(batch[m][flag][i].any())


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("finmm")
    except Exception:
        return "0.0.0"
