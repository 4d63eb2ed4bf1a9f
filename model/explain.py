"""Attributions for a task head: integrated gradients (default) or gradient x input over the embedded tokens.

The attributed inputs are the embedder outputs x_m (B, T_m, D) of every modality (before the modality-type
embedding and embedding LayerNorm); the default baseline is x_m = 0. The explained score f is the head's
probability: P(default) for credit_risk, else the probability of `target` (default: the predicted class).
IG: attr = (x - x') * mean_alpha grad f(x' + alpha (x - x')) (trapezoid rule over `steps`), so that
sum(attr) ~= f(x) - f(x') (completeness). Token attributions are summed over D, then grouped per tabular
feature, per word (WordPiece '##' pieces merged), per image patch and per day.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .modeling import Embedded
from .task import FinMMForTask

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]")


@dataclass
class Explanation:
    method: str
    head: str
    target: torch.Tensor
    """(B,) explained class per sample (1 = default for credit_risk)."""
    score: torch.Tensor
    """(B,) f(x): the explained probability."""
    baseline_score: torch.Tensor
    """(B,) f(baseline)."""
    tokens: dict[str, torch.Tensor]
    """modality -> (B, T_m) attribution per embedded token (text aligned with input_ids, [CLS] at 0)."""
    feature_names: list[str] = field(default_factory=list)
    tabular: torch.Tensor | None = None
    """(B, F) per tabular feature, in feature_names order (numeric then categorical)."""
    words: list[list[tuple[str, float]]] | None = None
    """Per sample (word, attribution), specials dropped; needs token_strings."""
    image: torch.Tensor | None = None
    """(B, H/p, W/p) per image patch."""
    series: torch.Tensor | None = None
    """(B, L) per day (a multi-day patch's attribution is spread evenly over its real days)."""

    def total(self) -> torch.Tensor:
        """(B,) sum of all token attributions (IG: ~ score - baseline_score)."""
        return sum(t.sum(1) for t in self.tokens.values())


def _score(
    model: FinMMForTask, head: str, embedded: Embedded, target: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    probs = model.heads[head](model.finmm.fuse(embedded).pooled)["probs"]  # (B,) or (B, K)
    if probs.dim() == 1:
        return probs, torch.ones_like(probs, dtype=torch.long)
    if target is None:
        target = probs.argmax(-1)
    return probs.gather(1, target[:, None]).squeeze(1), target  # (B,)


def _token_attributions(model, head, embedded, baselines, method, steps, target):
    xs = {m: x.detach() for m, (x, _) in embedded.items()}
    masks = {m: mask for m, (_, mask) in embedded.items()}
    base = {m: baselines.get(m, torch.zeros_like(x)) for m, x in xs.items()}
    alphas = [1.0] if method == "grad_x_input" else torch.linspace(0, 1, steps + 1).tolist()
    weights = [1.0] if method == "grad_x_input" else [0.5 if i in (0, steps) else 1.0 for i in range(steps + 1)]
    grads = {m: torch.zeros_like(x) for m, x in xs.items()}
    score = baseline_score = None
    for a, w in zip(alphas, weights, strict=True):
        inp = {m: (base[m] + a * (xs[m] - base[m])).requires_grad_(True) for m in xs}  # (B, T_m, D)
        with torch.enable_grad():
            f, target = _score(model, head, {m: (inp[m], masks[m]) for m in xs}, target)  # (B,)
            g = torch.autograd.grad(f.sum(), list(inp.values()))
        for m, gm in zip(inp, g, strict=True):
            grads[m] += w * gm
        if a == 1.0:
            score = f.detach()
        if a == 0.0:
            baseline_score = f.detach()
    n = sum(weights)
    if method == "grad_x_input":
        baseline_score = torch.full_like(score, float("nan"))
    attr = {m: ((xs[m] - base[m]) * grads[m] / n).sum(-1) for m in xs}  # (B, T_m)
    return attr, score, baseline_score, target


def _pad_to(tokens: list[str], length: int) -> list[str]:
    """Token strings of one row, padded with [PAD] (callers may pass the unpadded tokens)."""
    if len(tokens) > length:
        raise ValueError(f"got {len(tokens)} token strings for a text of {length} positions")
    return list(tokens) + ["[PAD]"] * (length - len(tokens))


def merge_wordpieces(tokens: list[str], scores: list[float]) -> list[tuple[str, float]]:
    """Merge '##' continuation pieces into the preceding word, summing their attributions."""
    words: list[tuple[str, float]] = []
    for tok, s in zip(tokens, scores, strict=True):
        if tok in SPECIAL_TOKENS:
            continue
        if tok.startswith("##") and words:
            w, ws = words[-1]
            words[-1] = (w + tok[2:], ws + s)
        else:
            words.append((tok, s))
    return words


def explain(
    model: FinMMForTask,
    batch: dict[str, dict[str, torch.Tensor]],
    head: str,
    target: torch.Tensor | None = None,
    method: str | None = None,
    steps: int | None = None,
    token_strings: list[list[str]] | None = None,
    baselines: dict[str, torch.Tensor] | None = None,
) -> Explanation:
    """Attribute head `head`'s probability to the inputs. method/steps default to config.explain.
    token_strings: per sample, the WordPiece strings of input_ids (e.g. tokenizer.convert_ids_to_tokens),
    padded or not; needed for per-word attributions."""
    method = method or model.config.explain.method
    steps = steps or model.config.explain.ig_steps
    if method not in ("integrated_gradients", "grad_x_input"):
        raise ValueError(f"unknown attribution method {method!r}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            embedded = model.finmm.embed(batch)
        attr, score, base_score, target = _token_attributions(
            model, head, embedded, baselines or {}, method, steps, target
        )
    finally:
        model.train(was_training)
    cfg = model.config
    exp = Explanation(
        method=method,
        head=head,
        target=target,
        score=score,
        baseline_score=base_score,
        tokens=attr,
        feature_names=cfg.tabular.feature_names,
    )
    if "tabular" in attr:
        exp.tabular = attr["tabular"]  # (B, F)
    if "image" in attr:
        side = cfg.image.image_size // cfg.image.patch_size
        exp.image = attr["image"].view(-1, side, side)  # (B, H/p, W/p)
    if "series" in attr:
        mask = batch["series"]["mask"].bool()  # (B, L)
        p, L = cfg.series.patch_len, mask.shape[1]
        per_patch = attr["series"].repeat_interleave(p, dim=1)[:, :L]  # (B, L)
        days = torch.nn.functional.pad(mask, (0, (-L) % p)).view(mask.shape[0], -1, p).sum(-1).clamp(min=1)
        exp.series = per_patch / days.repeat_interleave(p, dim=1)[:, :L] * mask  # (B, L)
    if "text" in attr and token_strings is not None:
        am = batch["text"]["attention_mask"].bool()
        exp.words = [
            merge_wordpieces(
                [t for t, k in zip(_pad_to(toks, am.shape[1]), am[i].tolist(), strict=True) if k],
                attr["text"][i][am[i]].tolist(),
            )
            for i, toks in enumerate(token_strings)
        ]
    return exp


def reason_codes(
    explanation: Explanation, k: int = 4, dataset: str | None = None
) -> list[list[dict[str, float | str]]]:
    """Per sample, the top-k tabular features with positive attribution (those that raised the explained
    probability, e.g. P(default)), largest first: [{"feature": name, "attribution": value}, ...]. With
    `dataset`, only that data set's own features (`<dataset>.` names) count: the union feature space also holds
    other data sets' features, which such a row carries as "missing" tokens and which are never its reasons."""
    if explanation.tabular is None:
        raise ValueError("reason codes need tabular attributions (the batch had no tabular modality)")
    names = explanation.feature_names
    own = [i for i, n in enumerate(names) if dataset is None or n.startswith(f"{dataset}.")]
    out = []
    for row in explanation.tabular:
        ranked = sorted(own, key=lambda i: -float(row[i]))
        out.append([{"feature": names[i], "attribution": float(row[i])} for i in ranked[:k] if float(row[i]) > 0])
    return out
