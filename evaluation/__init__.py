"""Evaluation, baselines and reports: every figure measured as ../shared/EVAL.md prescribes.

- `data`: the ground-truth rows of each data set (ids, splits, labels, subset flags) via `actors.sources`.
- `evaluators`: per data set, predicted probabilities keyed by row id -> every EVAL.md figure.
- `baselines`: the models a user would otherwise pick (LR, LightGBM, TF-IDF, majority, momentum), same splits.
- `plain_finetune`: MiniLM finetuned on text alone (the "no finmm" transformer baseline).
- `finmm_eval`: a finetuned finmm bundle on the prepared test shards, with per-modality ablations.
- `plots`, `report`: PNG plots (Pillow) and the per-task JSON/Markdown reports.
- `recipes`, `tune`: per-task finetune recipes and the Ray Tune search that writes them.
"""
