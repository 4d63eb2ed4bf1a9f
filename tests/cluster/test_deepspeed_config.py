"""build_deepspeed_config: a pure function from the pydantic settings to DeepSpeed's dict."""

import pytest
from pydantic import ValidationError

from cluster.deepspeed_config import build_deepspeed_config, comm_backend, warmup_then_linear_decay
from cluster.settings import DeepSpeedSettings, TrainerSettings


def trainer(**deepspeed) -> TrainerSettings:
    return TrainerSettings(batch_size=8, learning_rate=1e-4, warmup_steps=5, deepspeed=DeepSpeedSettings(**deepspeed))


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_stage_is_passed_through(stage):
    config = build_deepspeed_config(trainer(zero_stage=stage), total_steps=100)
    assert config["zero_optimization"]["stage"] == stage
    assert config["train_micro_batch_size_per_gpu"] == 8
    assert ("stage3_gather_16bit_weights_on_model_save" in config["zero_optimization"]) == (stage == 3)


def test_cpu_uses_torch_adamw_and_gloo_gpu_uses_fused_and_nccl():
    cpu = TrainerSettings()
    gpu = TrainerSettings(use_gpu=True)
    assert build_deepspeed_config(cpu, 10)["optimizer"]["params"]["torch_adam"] is True
    assert build_deepspeed_config(gpu, 10)["optimizer"]["params"]["torch_adam"] is False
    assert comm_backend(cpu) == "gloo" and comm_backend(gpu) == "nccl"


def test_precision_flags():
    assert build_deepspeed_config(trainer(precision="bf16"), 10)["bf16"]["enabled"] is True
    assert build_deepspeed_config(trainer(precision="fp32"), 10)["bf16"]["enabled"] is False
    config = build_deepspeed_config(TrainerSettings(use_gpu=True, deepspeed={"precision": "fp16"}), 10)
    assert config["fp16"]["enabled"] is True


def test_offload_and_accumulation_and_clipping():
    config = build_deepspeed_config(
        trainer(zero_stage=3, offload_optimizer="cpu", offload_params="cpu", gradient_accumulation_steps=4,
                gradient_clipping=0.5),
        total_steps=10,
    )
    assert config["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert config["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert config["gradient_accumulation_steps"] == 4
    assert config["gradient_clipping"] == 0.5


def test_schedule_warms_up_then_decays_to_zero_and_is_capped_by_total_steps():
    factor = warmup_then_linear_decay(total_steps=10, warmup_steps=4)
    assert [round(factor(t), 3) for t in (0, 3, 4, 7, 10)] == [0.25, 1.0, 1.0, 0.5, 0.0]
    short = warmup_then_linear_decay(total_steps=3, warmup_steps=50)
    assert short(2) == 1.0 and short(3) == 0.0
    assert "scheduler" not in build_deepspeed_config(trainer(), total_steps=3)  # the client scheduler keeps groups


def test_bf16_mixed_keeps_deepspeed_in_fp32():
    config = build_deepspeed_config(trainer(precision="bf16-mixed"), 10)
    assert config["bf16"]["enabled"] is False and config["fp16"]["enabled"] is False


def test_invalid_combinations_fail_at_config_time():
    with pytest.raises(ValidationError, match="zero_stage 3"):
        DeepSpeedSettings(zero_stage=2, offload_params="cpu")
    with pytest.raises(ValidationError, match="offload_optimizer"):
        DeepSpeedSettings(zero_stage=0, offload_optimizer="cpu")
    with pytest.raises(ValidationError, match="fp16 needs use_gpu"):
        TrainerSettings(deepspeed={"precision": "fp16"})
