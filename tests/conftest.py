"""Shared test set-up."""

import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning


@pytest.fixture(autouse=True)
def _quiet_convergence():
    """Tests train for a few epochs on purpose: stopping at max_iter is expected.

    Tests that check the warning itself use ``pytest.warns``, which still
    records it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
