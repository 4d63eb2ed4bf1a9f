"""Build the DeepSpeed config dict from the pydantic trainer settings. A pure function."""

from __future__ import annotations

from cluster.settings import TrainerSettings


def build_deepspeed_config(trainer: TrainerSettings, total_steps: int) -> dict:
    """The DeepSpeed JSON config for `trainer`, for a run of `total_steps` optimizer steps.

    CPU workers get torch's AdamW (`torch_adam`), because DeepSpeed's FusedAdam and CPUAdam
    JIT-compile for about 70 s first; GPU workers get the fused kernel. Learning rate follows
    a linear warm-up then linear decay to zero (DeepSpeed's WarmupDecayLR).
    """
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
    total_steps = max(int(total_steps), 1)
    warmup = max(min(trainer.warmup_steps, total_steps), 1)  # DeepSpeed requires a positive warm-up
    return {
        "train_micro_batch_size_per_gpu": trainer.batch_size,
        "gradient_accumulation_steps": ds.gradient_accumulation_steps,
        "gradient_clipping": ds.gradient_clipping,
        "zero_optimization": zero,
        "bf16": {"enabled": ds.precision == "bf16"},
        "fp16": {"enabled": ds.precision == "fp16"},
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
        "scheduler": {
            "type": "WarmupDecayLR",
            "params": {
                "warmup_min_lr": 0.0,
                "warmup_max_lr": trainer.learning_rate,
                "warmup_num_steps": warmup,
                "total_num_steps": total_steps,
                "warmup_type": "linear",
            },
        },
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def comm_backend(trainer: TrainerSettings) -> str:
    """NCCL between GPU workers, gloo between CPU workers."""
    return "nccl" if trainer.use_gpu else "gloo"
