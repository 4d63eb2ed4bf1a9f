import math
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from model.objectives.contrastive import contrastive_loss


def test_contrastive_by_hand():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # normalised inside
    scale = torch.tensor(math.log(2.0))
    # logits = 2 * I; each row: CE = -log(e^2 / (e^2 + 1))
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert abs(contrastive_loss(img, txt, scale).item() - expected) < 1e-6


def test_logit_scale_clamped_and_symmetric():
    img, txt = torch.randn(6, 4), torch.randn(6, 4)
    big = contrastive_loss(img, txt, torch.tensor(10.0))
    at_max = contrastive_loss(img, txt, torch.tensor(math.log(100.0)))
    assert torch.allclose(big, at_max)
    assert torch.allclose(contrastive_loss(img, txt, torch.tensor(1.0)), contrastive_loss(txt, img, torch.tensor(1.0)))
    assert contrastive_loss(img[:0], txt[:0], torch.tensor(1.0)) is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, img, txt, sizes, scale, out_dir):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        start = sum(sizes[:rank])
        local_img = img[start : start + sizes[rank]].clone().requires_grad_(True)
        local_txt = txt[start : start + sizes[rank]].clone()
        loss = contrastive_loss(local_img, local_txt, scale)
        loss.backward()
        save_file(
            {"loss": loss.detach().reshape(1), "grad": local_img.grad.contiguous()}, f"{out_dir}/{rank}.safetensors"
        )
    finally:
        dist.destroy_process_group()


def test_distributed_gather_equals_concatenated_batch(tmp_path):
    img, txt = torch.randn(5, 8), torch.randn(5, 8)
    scale = torch.tensor(math.log(10.0))
    sizes = [3, 2]  # unequal shards
    mp.spawn(_worker, args=(2, _free_port(), img, txt, sizes, scale, str(tmp_path)), nprocs=2, join=True)
    full_img = img.clone().requires_grad_(True)
    expected = contrastive_loss(full_img, txt, scale)
    expected.backward()
    for rank in range(2):
        r = load_file(str(tmp_path / f"{rank}.safetensors"))
        loss, grad = r["loss"][0], r["grad"]
        torch.testing.assert_close(loss, expected.detach(), atol=1e-6, rtol=1e-6)
        start = sum(sizes[:rank])
        # local shard gradient: d(full loss)/d(local features), as open_clip
        torch.testing.assert_close(grad, full_img.grad[start : start + sizes[rank]], atol=1e-6, rtol=1e-5)
