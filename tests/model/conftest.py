import random

import numpy as np
import pytest
import torch

from model.dummy import tiny_config

# The CI box has 2 cores shared with other jobs; 2 OpenMP threads under contention run ~10x slower than 1.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def config():
    return tiny_config(heads={"credit_risk": {}, "stock_movement": {}, "sentiment": {}, "intent": {"num_classes": 5}})


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)
