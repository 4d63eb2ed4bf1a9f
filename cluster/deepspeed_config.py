"""Build the DeepSpeed config dict from the pydantic trainer settings. A pure function."""

from __future__ import annotations

from cluster.settings import TrainerSettings


def build_deepspeed_config(trainer: TrainerSettings, total_steps: int, precision: str | None = None) -> dict:
    """The DeepSpeed JSON config for `trainer`, for a run of `total_steps` optimizer steps, in `precision`
    (resolved from `auto`; default: the trainer's own setting).

    CPU workers get torch's AdamW (`torch_adam`), because DeepSpeed's FusedAdam and CPUAdam
    JIT-compile for about 70 s first; GPU workers get the fused kernel. The learning rates live in the
    parameter groups (model.param_groups) and follow `warmup_then_linear_decay`, passed to
    `deepspeed.initialize` as the client scheduler: DeepSpeed's WarmupDecayLR would set one rate for
    every group. "bf16-mixed" keeps DeepSpeed in fp32 (the loop autocasts the forward).
    """
    precision = precision or trainer.deepspeed.precision
    ds = trainer.deepspeed
    zero: dict = {"stage": ds.zero_stage}
    if ds.zero_stage >= 1:
        zero.update({"overlap_comm": trainer.use_gpu, "contiguous_gradients": True})
    if ds.offload_optimizer != "none":
        zero["offload_optimizer"] = {"device": ds.offload_optimizer, "pin_memory": trainer.use_gpu}
    if ds.offload_params != "none":
        zero["offload_param"] = {"device": ds.offload_params, "pin_memory": trainer.use_gpu}
    if ds.zero_stage == 3:
        # Gather the full fp32 weights on save, so a checkpoint also yields a plain state dict.
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": trainer.batch_size,
        "gradient_accumulation_steps": ds.gradient_accumulation_steps,
        "gradient_clipping": ds.gradient_clipping,
        "zero_optimization": zero,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16"},
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": trainer.learning_rate,
                "betas": [0.9, 0.999],
                "eps": 1e-8,
                "weight_decay": trainer.weight_decay,
                "torch_adam": not trainer.use_gpu,
            },
        },
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def comm_backend(trainer: TrainerSettings) -> str:
    """NCCL between GPU workers, gloo between CPU workers."""
    return "nccl" if trainer.use_gpu else "gloo"


def warmup_then_linear_decay(total_steps: int, warmup_steps: int):
    """The LambdaLR factor at step t: linear warm-up from 0 to 1 over `warmup_steps`, then linear decay to 0
    at `total_steps`. Each parameter group's own peak rate is scaled by it, so their ratio holds."""
    total = max(int(total_steps), 1)
    warmup = max(min(int(warmup_steps), total), 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(total - warmup, 1))

    return factor
