"""
=====================================================
A convolutional against a dense autoencoder on images
=====================================================

A convolutional encoder shares small filters across the image, so it needs
far fewer weights than a dense layer to see every pixel. Images stay flat
rows (the shape of ``X`` does not change); ``input_shape=(channels, height,
width)`` tells the estimator how to read them, and ``hidden_layer_sizes``
gives the channels of the stride-2 convolutions. We compare it with a dense
autoencoder and PCA at the same code size on the 8x8 digits.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_ae import AutoencoderTransformer, neg_reconstruction_error

warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, _ = load_digits(return_X_y=True)
X = X / 16
X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)

common = dict(n_components=8, standardize=False, batch_size=64, max_iter=40,
              learning_rate=3e-3, random_state=0)
models = {
    "convolutional": AutoencoderTransformer(
        input_shape=(1, 8, 8), hidden_layer_sizes=(16, 32), **common),
    "dense": AutoencoderTransformer(hidden_layer_sizes=(64, 32), **common),
    "PCA": PCA(n_components=8),
}
errors, counts = {}, {}
for name, model in models.items():
    model.fit(X_train)
    errors[name] = -neg_reconstruction_error(model, X_test)
    if name != "PCA":
        counts[name] = sum(p.numel() for p in model.module_.parameters())
    print(f"{name:14s} held-out MSE {errors[name]:.4f}"
          + (f", {counts[name]} parameters" if name in counts else ""))

# %%
# The figure shows held-out errors (left) and ten held-out digits (right:
# originals, then the convolutional, dense and PCA reconstructions, all from
# eight numbers per image).
fig = plt.figure(figsize=(11, 3.8))
grid = fig.add_gridspec(4, 13)
ax = fig.add_subplot(grid[:, :3])
ax.bar(list(errors), list(errors.values()), color=["C3", "C0", "C7"])
ax.set_ylabel("held-out MSE per pixel")
ax.tick_params(axis="x", labelsize=8)
rows = {"original": X_test[:10]}  # then one row per model
rows.update({name: m.inverse_transform(m.transform(X_test[:10])) for name, m in models.items()})
for r, (label, images) in enumerate(rows.items()):
    for c in range(10):
        ax = fig.add_subplot(grid[r, 3 + c])
        ax.imshow(images[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if c == 0:
            ax.set_ylabel({"convolutional": "conv"}.get(label, label), fontsize=8)
fig.tight_layout()
plt.show()
