import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# "ci": sized for two cores; "dev": more examples. Choose with HYPOTHESIS_PROFILE=dev.
settings.register_profile(
    "ci", max_examples=6, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow checks (training runs, behaviour) run after the fast ones, so a failure shows up early."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
