"""The providers' tests run on one tiny module per test module."""

import pytest
from train._helpers import tiny_module


@pytest.fixture(scope="module")
def module():
    return tiny_module()
