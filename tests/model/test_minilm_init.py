import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

from model.config import FinMMConfig
from model.minilm_init import init_from_minilm, minilm_path
from model.modeling import FinMMModel


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    ours = init_from_minilm(FinMMModel(FinMMConfig.from_preset("small", text={"vocab_size": 30600})), seed=0).eval()
    ref = AutoModel.from_pretrained(minilm_path()).eval()
    return ours, ref


def test_text_path_reproduces_minilm(pair):
    ours, ref = pair
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (3, 24), generator=g)
    am = torch.ones_like(ids)
    am[1, 15:] = 0
    am[2, 6:] = 0
    ids[:, 0] = 101
    ids[0, -1], ids[1, 14], ids[2, 5] = 102, 102, 102
    ids = ids.masked_fill(am == 0, 0)
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=am).last_hidden_state  # (B, T, D)
        out = ours({"text": {"input_ids": ids, "attention_mask": am}})
    assert out.segments["text"] == slice(1, 24)  # text position i == sequence position i
    real = am.bool()
    torch.testing.assert_close(out.hidden_states[:, :24][real], expected[real], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.pooled, expected[:, 0], atol=1e-4, rtol=1e-4)


def test_added_token_rows_start_near_mean(pair):
    ours, _ = pair
    words = load_file(str(minilm_path() / "model.safetensors"))["embeddings.word_embeddings.weight"]
    table = ours.embedders["text"].word_embeddings.weight.detach()
    assert torch.equal(table[:30522], words)
    extra = table[30522:]
    assert extra.shape == (78, 384)
    dev = (extra - words.mean(0)).std().item()
    assert 0.5 * 0.02 * words.std().item() < dev < 1.5 * 0.02 * words.std().item()
    again = init_from_minilm(FinMMModel(FinMMConfig.from_preset("small", text={"vocab_size": 30600})), seed=0)
    assert torch.equal(again.embedders["text"].word_embeddings.weight[30522:], extra)  # seeded


def test_refuses_wrong_size():
    with pytest.raises(ValueError, match="small"):
        init_from_minilm(FinMMModel(FinMMConfig.from_preset("tiny")))
