"""
=============================================
A linear autoencoder finds PCA's subspace
=============================================

An autoencoder without hidden layers, without activations and trained on the
squared error is a linear map to ``n_components`` values and back. Its best
solution spans the same subspace as PCA's first components (Baldi and Hornik,
1989), although its code axes need not be PCA's orthogonal components. We
check both claims on the digits: the principal angles between the two
subspaces, and the held-out reconstruction errors.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.linalg import subspace_angles
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_ae import AutoencoderTransformer, neg_reconstruction_error

warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, _ = load_digits(return_X_y=True)
X = X / 16  # pixels in [0, 1]: weights of order one suit Adam's steps
X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)

# %%
# The linear autoencoder
# ----------------------
# The built-in network starts at PCA's solution (its linear path is
# initialised to it, so ``hidden_layer_sizes=()`` would be PCA before the
# first step). To see training find the subspace from a random start, as in
# the classic experiment, we give it our own linear encoder and decoder:
# custom networks train from their own random initialisation.
# ``standardize=False``: PCA does not rescale the pixels either, so both
# minimise the same squared error; ``early_stopping=False`` trains on every
# training row.
n_components = 5
torch.manual_seed(0)  # the custom layers' random initialisation
linear_ae = AutoencoderTransformer(
    n_components=n_components,
    encoder=torch.nn.Linear(64, n_components),
    decoder=torch.nn.Linear(n_components, 64),
    standardize=False,
    early_stopping=False,
    # Full-batch Adam: no minibatch noise left in the optimum it reaches.
    batch_size=len(X_train),
    learning_rate=3e-2,
    max_iter=1500,
    tol=0.0,
    n_iter_no_change=1500,
    random_state=0,
).fit(X_train)
pca = PCA(n_components=n_components).fit(X_train)

# %%
# The decoder's subspace, with public methods only
# ------------------------------------------------
# The decoder is affine: ``inverse_transform(z) = z @ W + b``. Decoding the
# zero code gives ``b``, decoding each unit vector gives ``b`` plus a row of
# ``W``; the rows span the autoencoder's subspace.
bias = linear_ae.inverse_transform(np.zeros((1, n_components)))
W = linear_ae.inverse_transform(np.eye(n_components)) - bias
angles = np.degrees(subspace_angles(W.T, pca.components_.T))
print("principal angles (degrees):", np.round(angles, 2))
print("PCA's explained variances:", np.round(pca.explained_variance_, 3))

errors = {
    "PCA": -neg_reconstruction_error(pca, X_test),
    "linear autoencoder": -neg_reconstruction_error(linear_ae, X_test),
}
for name, error in errors.items():
    print(f"{name:20s} held-out mean squared error: {error:.5f}")

# %%
# The figure shows the principal angles between the two 5-dimensional
# subspaces (left; 0 degrees means the same direction) and the held-out
# reconstruction errors (right). Small angles and nearly equal errors mean
# the network found PCA's subspace; how small depends on how long it
# trained (1500 full-batch steps here) and on the gaps between PCA's
# eigenvalues: a direction whose variance is close to the next one's is
# found last.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
ax1.bar(np.arange(1, n_components + 1), angles, color="C0")
ax1.set_xlabel("principal angle")
ax1.set_ylabel("degrees")
ax1.set_title("Angles between the subspaces")
ax2.bar(list(errors), list(errors.values()), color=["C1", "C0"])
ax2.set_ylabel("held-out MSE per pixel")
ax2.set_title("Reconstruction error")
fig.tight_layout()
plt.show()

# %%
# The code axes themselves differ: PCA's components are orthonormal and
# ordered by variance, the network's rows of ``W`` are any basis of the same
# subspace.
cosines = np.abs((W / np.linalg.norm(W, axis=1, keepdims=True)) @ pca.components_.T)
print("|cosine| between the decoder's rows and PCA's components:")
print(np.round(cosines, 2))
