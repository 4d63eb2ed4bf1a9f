"""Per-task finetune recipes: partial ray_config.yaml files holding only `finetune:` and `model:` keys
(pretraining recipes such as `cjk_warmstart.yaml`, for `finmm pretrain --recipe`, may also hold `pretrain:`).

A recipe is applied on top of the main config, as dotted overrides (`load_recipe`) or merged into a full
config file (`merge_recipe`) that `finmm finetune --config` takes as it is:

    finmm finetune --task sentiment --recipe cluster/recipes/sentiment.yaml
    # or merged into a full config file:
    python -m evaluation.recipes merge ray_config.yaml cluster/recipes/sentiment.yaml -o /tmp/run.yaml
    finmm config validate /tmp/run.yaml && finmm finetune --task sentiment --config /tmp/run.yaml

Recipe keys are validated against the config schema when finmm loads them, so a typo fails early with
the key named.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

RECIPE_SECTIONS = ("pretrain", "finetune", "model")
RECIPES_DIR = Path(__file__).resolve().parents[1] / "cluster" / "recipes"


def read_recipe(path: str | Path) -> dict:
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a recipe must be a mapping with {' and/or '.join(RECIPE_SECTIONS)} keys")
    extra = sorted(set(raw) - set(RECIPE_SECTIONS))
    if extra:
        raise ValueError(f"{path}: a recipe may only set {', '.join(RECIPE_SECTIONS)}; found {extra}")
    return raw


def _scalar(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def flatten(tree: dict, prefix: str = "") -> list[str]:
    """{"finetune": {"learning_rate": 5e-5}} -> ["finetune.learning_rate=5.0e-05"] (YAML values)."""
    out = []
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += flatten(value, dotted + ".")
        else:
            out.append(f"{dotted}={_scalar(value)}")
    return out


def load_recipe(path: str | Path) -> list[str]:
    """The recipe as dotted `key=value` overrides for `finmm.config.load_settings(path, overrides)`."""
    return flatten(read_recipe(path))


def deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def merge_recipe(config_path: str | Path | None, recipe_path: str | Path, out_path: str | Path) -> Path:
    """Write `config_path` (or built-in defaults) with the recipe merged in, after validating the result."""
    base = yaml.safe_load(Path(config_path).read_text()) if config_path else {}
    merged = deep_merge(base or {}, read_recipe(recipe_path))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# {config_path or 'defaults'} + recipe {recipe_path}\n"
    out_path.write_text(header + yaml.safe_dump(merged, sort_keys=False))
    return out_path  # check it with `finmm config validate <out_path>` (cluster/ does not import the CLI's config)


def write_recipe(path: str | Path, overrides: dict[str, object], comment: str = "") -> Path:
    """Write dotted overrides (`finetune.learning_rate` -> value) as a nested recipe YAML."""
    tree: dict = {}
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if parts[0] not in RECIPE_SECTIONS:
            raise ValueError(f"recipe key {dotted!r} is outside {RECIPE_SECTIONS}")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value.item() if hasattr(value, "item") else value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    path.write_text(header + yaml.safe_dump(tree, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="finmm finetune recipes")
    sub = parser.add_subparsers(dest="cmd", required=True)
    ov = sub.add_parser("overrides", help="print the recipe as dotted overrides")
    ov.add_argument("recipe")
    mg = sub.add_parser("merge", help="merge a recipe into a config file")
    mg.add_argument("config")
    mg.add_argument("recipe")
    mg.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    if args.cmd == "overrides":
        print(" ".join(load_recipe(args.recipe)))
    else:
        print(merge_recipe(args.config, args.recipe, args.output))


if __name__ == "__main__":
    main()
