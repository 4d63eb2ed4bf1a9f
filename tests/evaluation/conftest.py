import pytest
import torch

# The CI box has 2 cores shared with other jobs.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_root():
    from actors.data_root import resolve_data_root

    try:
        return resolve_data_root(None)
    except Exception as exc:  # pragma: no cover - raw data missing
        pytest.skip(f"raw data sets not found: {exc}")
