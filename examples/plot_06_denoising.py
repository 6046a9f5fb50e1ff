"""
=====================================================================
Denoising digits: Gaussian, masking and your own noise
=====================================================================

A denoising autoencoder is trained to reconstruct the clean input from a
corrupted copy of it. The corruption happens inside ``fit``, on every batch
and in training only: give the estimator the *clean* data and a noise model
(``noise``), not noisy data and clean targets (``fit`` ignores ``y``, as
every scikit-learn transformer does). Besides the built-in Gaussian and
masking noise, ``noise`` takes your own function of a batch and a random
generator; here, the tutorials' noise model: add Gaussian noise, then clip
to [0, 1].
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_ae import AutoencoderTransformer

warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, _ = load_digits(return_X_y=True)
X = X / 16  # pixels in [0, 1]
X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)


def shift_and_clip(batch, generator):
    """Our own noise model: Gaussian noise of sd 0.3, then clip to [0, 1].

    ``batch`` is a float tensor of flat rows; draw from ``generator`` so that
    ``random_state`` makes the fit reproducible.
    """
    noise = torch.randn(batch.shape, generator=generator, device=batch.device)
    return (batch + 0.3 * noise).clamp(0, 1)


# %%
# Four autoencoders, one per noise model
# --------------------------------------
# ``output_activation='logistic'`` reconstructs pixels in (0, 1); the data
# are then used as they are (no internal standardization), so the noise
# levels are in pixel units.
common = dict(n_components=16, hidden_layer_sizes=(128,), output_activation="logistic",
              learning_rate=3e-3, batch_size=64, max_iter=60, random_state=0)
models = {
    "no noise": AutoencoderTransformer(**common),
    "gaussian, sd 0.3": AutoencoderTransformer(noise="gaussian", noise_level=0.3, **common),
    "mask, p 0.3": AutoencoderTransformer(noise="mask", noise_level=0.3, **common),
    "own: shift and clip": AutoencoderTransformer(noise=shift_and_clip, **common),
}
for model in models.values():
    model.fit(X_train)

# %%
# Test digits corrupted with our noise model
# ------------------------------------------
# We corrupt the held-out digits with the same function (any generator
# will do here) and reconstruct them with each model. The error is measured
# against the clean digits.
generator = torch.Generator().manual_seed(1)
X_noisy = shift_and_clip(torch.as_tensor(X_test), generator).numpy()
print(f"{'noisy input':22s} MSE to the clean digits: {np.mean((X_noisy - X_test) ** 2):.4f}")
outputs = {}
for name, model in models.items():
    outputs[name] = model.inverse_transform(model.transform(X_noisy))
    print(f"{name:22s} MSE to the clean digits: {np.mean((outputs[name] - X_test) ** 2):.4f}")

# %%
# Noisy input, outputs and clean target
# -------------------------------------
# Each column is a held-out digit: its noisy version (top), each model's
# output, and the clean digit (bottom).
rows = {"noisy input": X_noisy, **outputs, "clean target": X_test}
fig, axes = plt.subplots(len(rows), 8, figsize=(8, 1.1 * len(rows)))
for ax_row, (name, images) in zip(axes, rows.items()):
    for ax, image in zip(ax_row, images[:8]):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    ax_row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
fig.tight_layout()
plt.show()

# %%
# The models trained with additive noise (Gaussian, and our shift and clip)
# remove it best; they are close, as the two noise models are. Masking
# teaches another task (filling in missing pixels), which does not help
# with this noise. Even without noise in training the narrow code removes
# part of it, since it cannot carry pixel noise through. To denoise data whose noise you can describe, write
# it as a function as above; if you only have pairs of noisy and clean
# data, a supervised regressor (e.g.
# :class:`~sklearn.neural_network.MLPRegressor` from noisy to clean) is the
# right tool, not an autoencoder.
