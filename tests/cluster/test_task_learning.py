"""A short smoke finetune of each finance task (tiny preset, random init, 2 Ray Train + DeepSpeed CPU workers)
over a 32-row slice of its real data learns above chance.

"Learns" here means the exported bundle, reloaded from safetensors and scored by the evaluator's own
`predict`, fits the slice it trained on clearly better than chance: balanced accuracy (mean recall over the
slice's classes, so predicting the majority class scores 1/k) at least 0.2 above 1/k, or credit AUC >= 0.65.
A slice this small cannot show generalisation; that is `finmm evaluate` at full size (docs/evaluation.md).
What this catches: labels that do not reach the head, a head wired to the wrong task, a loss that does not
train, an export that loses the head or the layout, and inference that scores rows differently from training.
"""

from __future__ import annotations

import numpy as np
import pytest

from cluster.metrics import binary_metrics
from cluster.tasks import TASKS, task_spec
from cluster.trainer import finetune
from evaluation.finmm_eval import bundle_layout, predict, prepared_modalities, read_split
from model.bundle import load_bundle
from model.precision import resolve_precision

pytestmark = pytest.mark.timeout(600)

STEPS = 60
LEARNING_RATE = 1e-3  # tiny starts from random weights; MiniLM-sized runs use 2e-5 to 5e-5


def _train_slice_predictions(model_dir, task: str, output_dir):
    bundle = load_bundle(model_dir)
    dataset = task_spec(task).datasets[0]  # sentiment: PhraseBank (FinFE is not in the prepared slice)
    table = read_split(output_dir, dataset, "train")
    tabular = dataset if "tabular" in prepared_modalities(output_dir, dataset) else None
    probs = predict(bundle.model, task_spec(task).head, table, bundle_layout(bundle), tabular)
    labels = np.asarray(table["label"].to_pylist(), dtype=np.int64)
    return labels, np.asarray(probs)


@pytest.mark.parametrize(("task", "precision"), [*((t, "auto") for t in TASKS), ("sentiment", "fp32")])
def test_smoke_finetune_learns_its_slice_above_chance(tiny_settings, prepared_for_training, task, precision):
    """`auto` is bf16-mixed on a CPU with AMX/AVX512-BF16 (this machine's), fp32 elsewhere; fp32 is also run by
    name, so both precisions are shown to learn. One task per run: a two-task (summed-loss) run of credit and
    sentiment left sentiment's slice at chance even after 150 steps (docs/training.md). Where `auto` already
    resolves to fp32 (a CPU without bf16, like CI's), the fp32 case would repeat the sentiment-auto run."""
    if precision == "fp32" and resolve_precision("auto", use_gpu=False) == "fp32":
        pytest.skip("auto is fp32 on this CPU (no bf16): the sentiment-auto case is this run")
    settings = tiny_settings(f"finetune.max_steps={STEPS}", f"finetune.learning_rate={LEARNING_RATE}",
                             f"finetune.checkpoint_every={STEPS}", "finetune.deepspeed.zero_stage=2",
                             f"finetune.deepspeed.precision={precision}")
    outcome = finetune(settings, [task], name=f"learn-{task}-{precision}")
    labels, probs = _train_slice_predictions(outcome.model_dir, task, prepared_for_training)
    assert len(labels) == 32 and np.isfinite(probs).all()

    if task == "credit_risk":
        assert 0 < labels.sum() < len(labels), "the slice needs both outcomes for an AUC"
        auc = binary_metrics(labels, probs)["auc"]
        assert auc >= 0.65, f"{task}: train-slice AUC {auc:.3f} vs chance 0.5"  # measured 0.73
        return
    # balanced accuracy: the mean recall over the classes in the slice; any constant prediction scores 1/k
    predicted = probs.argmax(axis=1)
    classes = np.unique(labels)
    balanced = float(np.mean([(predicted[labels == c] == c).mean() for c in classes]))
    chance = 1.0 / len(classes)
    # measured: stock_movement 0.94 (chance 0.50), sentiment 0.67 (0.33), customer_service 0.56 (0.03)
    assert balanced >= chance + 0.2, f"{task}: train-slice balanced accuracy {balanced:.3f} vs chance {chance:.3f}"
