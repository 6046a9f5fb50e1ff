"""
======================================
Sparse codes: KL and L1 penalties
======================================

A sparse autoencoder may use a wide code, but is pushed to switch most code
units off for any one input. ``sparsity='kl'`` passes the code through a
sigmoid and pulls each unit's mean activation over a batch toward
``sparsity_target`` with a KL divergence (Ng's sparse autoencoder notes);
``sparsity='l1'`` adds the L1 norm of the (linear) code to the loss
(*Hands-On Machine Learning*). We look at the code activations of each.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_ae import AutoencoderTransformer, neg_reconstruction_error

warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, _ = load_digits(return_X_y=True)
X = X / 16
X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)

common = dict(
    n_components=32,
    hidden_layer_sizes=(64,),
    standardize=False,
    learning_rate=3e-3,
    batch_size=64,
    max_iter=40,
    random_state=0,
)
models = {
    # KL without weight: the same sigmoid code, no penalty (the reference).
    "sigmoid code, no penalty": AutoencoderTransformer(
        sparsity="kl", sparsity_weight=0.0, **common),
    "KL, target 0.05": AutoencoderTransformer(
        sparsity="kl", sparsity_target=0.05, sparsity_weight=0.5, **common),
    "linear code, no penalty": AutoencoderTransformer(**common),
    "L1, weight 0.01": AutoencoderTransformer(
        sparsity="l1", sparsity_weight=0.01, **common),
}
codes = {}
for name, model in models.items():
    model.fit(X_train)
    codes[name] = model.transform(X_test)
    Z = np.abs(codes[name])
    print(f"{name:26s} mean |code| {Z.mean():.3f}, share of |code| < 0.05: "
          f"{(Z < 0.05).mean():.2f}, held-out MSE {-neg_reconstruction_error(model, X_test):.4f}")

# %%
# Histograms of the code activations
# ----------------------------------
# The figure shows every code value of the held-out digits (32 per digit):
# top, sigmoid codes without and with the KL penalty (which piles the
# activations near 0, with the mean near the target); bottom, linear codes
# without and with the L1 penalty (which shrinks most values to near 0).
fig, axes = plt.subplots(2, 2, figsize=(10, 5.5))
for ax, (name, Z) in zip(axes.ravel(), codes.items()):
    ax.hist(Z.ravel(), bins=60, color="C0" if "no penalty" in name else "C3")
    ax.set_title(f"{name}: mean {Z.mean():.3f}", fontsize=10)
    ax.set_yscale("log")
    ax.set_xlabel("code activation")
fig.tight_layout()
plt.show()

# %%
# The penalty is part of the training loss only: ``score_samples`` and the
# printed errors are the pure reconstruction error, which is the price paid
# for sparser codes.
