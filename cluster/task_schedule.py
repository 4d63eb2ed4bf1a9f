"""Interleaved multi-task finetuning: which task's micro-batches each optimizer step trains.

With `finetune.task_epochs`, a step trains one task instead of all of them (MT-DNN's task sampling, made
deterministic). Task t gets `round(task_epochs[t] * batches_per_epoch[t] / accumulation)` steps, spread evenly
through the run, so a small task can have several passes while a large, costly one has a fraction of one.
"""

from __future__ import annotations

import math


def interleaved_schedule(steps_per_task: list[int]) -> list[int]:
    """Stream index per step: task i's k-th step sits at (k + 0.5) / steps_per_task[i] of the run.

    Ties keep the task order, so the schedule is the same on every rank and on resume."""
    slots = [((k + 0.5) / n, i) for i, n in enumerate(steps_per_task) for k in range(n)]
    return [i for _, i in sorted(slots)]


def steps_for_epochs(epochs: float, micro_batches_per_epoch: int, accumulation: int) -> int:
    """Optimizer steps that give one task `epochs` passes over its train shard (at least one step)."""
    return max(1, round(epochs * micro_batches_per_epoch / max(accumulation, 1)))


def validation_interval(total_steps: int, task_epochs: list[float]) -> int:
    """Steps between validations: the run is scored ceil(max epochs) times, always at its end."""
    return max(1, math.ceil(total_steps / max(1, math.ceil(max(task_epochs)))))
