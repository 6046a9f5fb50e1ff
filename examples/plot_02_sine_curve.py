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
X = np.c_[t, np.sin(2 * t)] + 0.05 * rng.randn(1000, 2)
X_test = np.c_[np.linspace(-np.pi, np.pi, 300), np.sin(2 * np.linspace(-np.pi, np.pi, 300))]

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
# The figure shows the training points (grey) and, for points on the
# noise-free curve, what each model gives back from its single number: PCA's
# reconstructions all lie on one line, the autoencoder's on a curve (the
# decoder's image of the code line).
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for ax, (name, model) in zip(axes, [("PCA, 1 component", pca), ("autoencoder, 1-value code", ae)]):
    X_rec = model.inverse_transform(model.transform(X_test))
    ax.scatter(X[:, 0], X[:, 1], s=4, c="0.75", label="training data")
    ax.plot(X_rec[:, 0], X_rec[:, 1], "C3", lw=2, label="reconstruction of the curve")
    ax.set_title(name)
    ax.set_xlabel("x1")
axes[0].set_ylabel("x2")
axes[0].legend(loc="lower right", fontsize=8)
fig.tight_layout()
plt.show()
