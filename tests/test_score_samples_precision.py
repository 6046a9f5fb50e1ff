"""AutoencoderTransformer.score_samples: the float32 forward pass for float32
input, float64 for the errors in input units."""

import numpy as np
import torch

from sklearn_ae import AutoencoderTransformer

CPU = dict(hidden_layer_sizes=(8,), n_components=2, max_iter=3, random_state=0, device="cpu")


def make_data(n_samples=120, n_features=5, seed=0):
    rng = np.random.RandomState(seed)
    X = np.tanh(rng.randn(n_samples, 2) @ rng.randn(2, n_features))
    return 1e3 * X + 7.0 + rng.randn(n_samples, n_features)


def errors_by_hand(ae, X, dtype):
    """Mean squared residual in input units, the network run in ``dtype``:
    float32 squares weighted in float64, or all in float64."""
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    # As TensorData standardizes: x * (1 / scale) + (-mean / scale), one addcmul.
    offset = torch.as_tensor(-ae.mean_ / ae.scale_, dtype=dtype)
    factor = torch.as_tensor(1.0 / ae.scale_, dtype=dtype)
    Xs = torch.addcmul(offset, torch.as_tensor(X.astype(np_dtype)), factor)
    module = ae.module_.to(dtype).eval()
    try:
        with torch.no_grad():
            residuals = (module(Xs) - Xs).numpy()
    finally:
        ae.module_.float()
    if dtype == torch.float32:
        return (residuals**2).astype(np.float64) @ (ae.scale_**2 / X.shape[1])
    return ((residuals * ae.scale_) ** 2).mean(axis=1)


def test_float32_input_scores_from_the_float32_network_in_float64():
    X = make_data()
    ae = AutoencoderTransformer(**CPU).fit(X.astype(np.float32))
    X32 = X.astype(np.float32)
    scores = ae.score_samples(X32)
    assert scores.dtype == np.float64
    # The float32 forward pass (as transform's), the residuals' squares in
    # float64: equal up to float64 rounding, not float32's.
    np.testing.assert_allclose(
        -scores, errors_by_hand(ae, X32, torch.float32), rtol=1e-12
    )
    # float64 input still runs a float64 copy of the network.
    np.testing.assert_allclose(
        -ae.score_samples(X), errors_by_hand(ae, X, torch.float64), rtol=1e-12
    )
    # float32 against float64 rounding of the same rows: a squared residual
    # far below the typical one carries float32's error amplified (about
    # 1e-5 relative here, on one row of 120).
    np.testing.assert_allclose(scores, ae.score_samples(X32.astype(np.float64)), rtol=3e-5)
