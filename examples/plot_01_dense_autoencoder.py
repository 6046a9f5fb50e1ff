"""
=========================================
A deep dense autoencoder against PCA
=========================================

The first experiment of the classic Keras tutorial: a fully connected encoder
squeezes 784-pixel images into a small code and a mirrored decoder rebuilds
them. The tutorial's MNIST is not available offline, so we use scikit-learn's
digits upsampled from 8x8 to 28x28 pixels. :class:`~sklearn.decomposition.PCA`
with the same number of components is the baseline every autoencoder has to
beat.
"""

# %%
# Data: digits as 28x28 images in [0, 1]
# --------------------------------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.ndimage import zoom
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_ae import AutoencoderTransformer, neg_reconstruction_error

# The short trainings below stop at max_iter on purpose.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

digits = load_digits()
images = zoom(digits.images / 16, (1, 28 / 8, 28 / 8), order=1).clip(0, 1)
X = images.reshape(len(images), -1)  # (1797, 784)
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
print(X_train.shape, X_test.shape)

# %%
# Models with a 16-value code
# ---------------------------
# As in the tutorial, the pixels are read as probabilities: the decoder's
# output goes through a sigmoid and the loss is the binary cross-entropy
# (``loss='bce'``, which needs no internal scaling).
n_components = 16
ae = AutoencoderTransformer(
    n_components=n_components,
    hidden_layer_sizes=(128, 64),
    loss="bce",
    learning_rate=3e-3,
    max_iter=60,
    random_state=0,
).fit(X_train)
pca = PCA(n_components=n_components, random_state=0).fit(X_train)

# %%
# Originals and reconstructions
# -----------------------------
# The figure shows ten held-out digits (top row), the autoencoder's
# reconstructions (middle) and PCA's (bottom), both from 16 numbers per image.
rows = {
    "original": X_test[:10],
    "autoencoder": ae.inverse_transform(ae.transform(X_test[:10])),
    "PCA": pca.inverse_transform(pca.transform(X_test[:10])),
}
fig, axes = plt.subplots(3, 10, figsize=(10, 3.3))
for r, (label, images) in enumerate(rows.items()):
    for c in range(10):
        axes[r, c].imshow(images[c].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(label, fontsize=9)
fig.suptitle(f"Held-out digits and their reconstructions from {n_components} values")
plt.show()

# %%
# The loss curve
# --------------
# ``loss_curve_`` holds the mean training loss of each epoch (here the
# binary cross-entropy per pixel); ``net_.history`` has skorch's full record.
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(np.arange(1, len(ae.loss_curve_) + 1), ae.loss_curve_)
ax.set_xlabel("epoch")
ax.set_ylabel("training loss (BCE per pixel)")
ax.set_title("AutoencoderTransformer.loss_curve_")
fig.tight_layout()
plt.show()

# %%
# Which model reconstructs better?
# ---------------------------------
# PCA minimises exactly this squared error among all linear maps to 16
# values, and upsampled digits have only 64 degrees of freedom, so it is a
# strong baseline here; the network gets 60 epochs of a cross-entropy loss.
errors = {name: -neg_reconstruction_error(m, X_test) for name, m in [("autoencoder", ae), ("PCA", pca)]}
winner = min(errors, key=errors.get)
print(f"lower held-out error: {winner} ({errors[winner]:.4f} against "
      f"{max(errors.values()):.4f})")
