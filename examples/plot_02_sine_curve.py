"""
=================================================
A curve that PCA cannot follow: a 1-D code
=================================================

Points on a sine curve in the plane have one degree of freedom, their
position along the curve, but no straight line goes through them. PCA with
one component can only project them onto its best line; an autoencoder with
a one-value code can learn to walk along the curve.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from sklearn_ae import AutoencoderTransformer, neg_reconstruction_error

warnings.filterwarnings("ignore", category=ConvergenceWarning)

rng = np.random.RandomState(0)
t = rng.uniform(-np.pi, np.pi, size=1000)
X = np.c_[t, np.sin(t)] + 0.05 * rng.randn(1000, 2)
X_test = np.c_[np.linspace(-np.pi, np.pi, 300), np.sin(np.linspace(-np.pi, np.pi, 300))]

# %%
# One number per point
# --------------------
# A smooth activation (``tanh``) gives a smooth decoded curve.
ae = AutoencoderTransformer(
    n_components=1,
    hidden_layer_sizes=(32, 32),
    activation="tanh",
    learning_rate=1e-2,
    batch_size=64,
    max_iter=150,
    random_state=0,
).fit(X)
pca = PCA(n_components=1).fit(X)

for name, model in [("autoencoder", ae), ("PCA", pca)]:
    print(f"{name:12s} mean squared error on the noise-free curve: "
          f"{-neg_reconstruction_error(model, X_test):.4f}")

# %%
# What each model maps the data to
# --------------------------------
# The figure shows the training points (grey), what each model gives back
# for points of the noise-free curve (red dots), and the set of everything
# its decoder can output, the decoded line of codes (black): a straight line
# for PCA, a curve for the autoencoder.
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for ax, (name, model) in zip(axes, [("PCA, 1 component", pca), ("autoencoder, 1-value code", ae)]):
    codes = model.transform(X_test)
    X_rec = model.inverse_transform(codes)
    code_line = np.linspace(codes.min(), codes.max(), 400).reshape(-1, 1)
    decoded = model.inverse_transform(code_line)
    ax.scatter(X[:, 0], X[:, 1], s=4, c="0.75", label="training data")
    ax.plot(decoded[:, 0], decoded[:, 1], "k", lw=1, label="decoded codes")
    ax.scatter(X_rec[:, 0], X_rec[:, 1], s=6, c="C3", label="reconstructions of the curve")
    ax.set_title(name)
    ax.set_xlabel("x1")
axes[0].set_ylabel("x2")
axes[0].legend(loc="lower right", fontsize=8)
fig.tight_layout()
plt.show()

# %%
# A harder curve
# --------------
# With two periods (``np.sin(2 * t)``) the same network and training fold
# the line of codes across the curve: when we tried it, the error was still
# about a third of PCA's, but the decoded curve jumped from arc to arc instead
# of following the sine. A harder curve needs a larger network or longer
# training.
