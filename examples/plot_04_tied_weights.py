"""
=============================================
A stacked autoencoder with tied weights
=============================================

In a stacked autoencoder whose decoder mirrors its encoder, each decoder
layer can reuse the transpose of its mirror encoder layer's weight matrix
(*Hands-On Machine Learning*, "tying weights"): half the weights to learn,
and a decoder that cannot drift from the encoder. Each layer keeps its own
bias. We compare parameter counts, held-out errors and reconstructions with
and without ``tied_weights``.
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

params = dict(
    n_components=10,
    hidden_layer_sizes=(48, 24),
    activation="tanh",
    standardize=False,
    learning_rate=3e-3,
    batch_size=64,
    max_iter=60,
    random_state=0,
)
models = {
    "untied": AutoencoderTransformer(**params).fit(X_train),
    "tied": AutoencoderTransformer(tied_weights=True, **params).fit(X_train),
}

# %%
# Parameter counts and errors
# ---------------------------
# ``module_`` is the fitted torch network; tied decoder layers hold only
# their biases.
counts, errors = {}, {}
for name, model in models.items():
    counts[name] = sum(p.numel() for p in model.module_.parameters())
    errors[name] = -neg_reconstruction_error(model, X_test)
    print(f"{name:7s} {counts[name]:6d} parameters, held-out MSE {errors[name]:.4f}")

# %%
# Both networks start at PCA's solution (their linear paths are initialised
# to it; with ``tied_weights`` the linear maps are tied too), and both
# improve on it: on this split the untied network's held-out error is about
# 0.74x PCA's, the tied one's about 0.78x, with half the weights. The tied
# start zeroes the encoder branch's *first* layer, which is also the decoder
# branch's output layer (see the ``tied_weights`` entry of the class
# docstring): zeroing its last layer instead, as untied networks do, starts
# a tied network at a saddle point that training never leaves (an earlier
# version ended here at PCA's error).
pca_error = -neg_reconstruction_error(PCA(n_components=10).fit(X_train), X_test)
print(f"PCA(10)                   held-out MSE {pca_error:.4f}")
for name, model in models.items():
    print(f"{name:7s} ran {model.n_iter_} epochs")

# %%
# The figure shows the number of trainable parameters (left), the held-out
# reconstruction error (middle) and eight held-out digits with both
# reconstructions (right: originals, untied, tied).
fig = plt.figure(figsize=(11, 3.6), layout="constrained")
left, right = fig.subfigures(1, 2, width_ratios=[1, 2])
ax1, ax2 = left.subplots(1, 2)
ax1.bar(list(counts), list(counts.values()), color=["C0", "C1"])
ax1.set_title("parameters")
ax2.bar(list(errors), list(errors.values()), color=["C0", "C1"])
ax2.set_title("held-out MSE")
axes = right.subplots(3, 8)
rows = [X_test[:8]] + [m.inverse_transform(m.transform(X_test[:8])) for m in models.values()]
for r, (label, images) in enumerate(zip(["original", "untied", "tied"], rows)):
    for c in range(8):
        axes[r, c].imshow(images[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(label, fontsize=9)
plt.show()
