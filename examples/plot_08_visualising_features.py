"""
=====================================================================
Visualising features: first-layer weights and hidden activations
=====================================================================

What has an autoencoder learned? Two classic views: the weights of the
first hidden layer drawn as images (each unit's "receptive field" over the
pixels), and the activations of a hidden layer for inputs of each class.
:meth:`~sklearn_ae.AutoencoderTransformer.transform_hidden` returns a hidden
layer's activations; the weights are in the fitted torch module,
``module_``.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from sklearn_ae import AutoencoderTransformer

warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, y = load_digits(return_X_y=True)
X = X / 16

ae = AutoencoderTransformer(
    n_components=16, hidden_layer_sizes=(64, 32), activation="logistic",
    output_activation="logistic", learning_rate=3e-3, batch_size=64,
    max_iter=100, random_state=0,
).fit(X)

# %%
# First-layer weights as images
# -----------------------------
# The encoder is a linear map (which starts as PCA) plus a nonlinear branch
# through the hidden layers; ``module_.encoder.branch[0]`` is the branch's
# first layer, one weight per pixel for each of its 64 units. Each image
# shows one unit's weights over the 8x8 pixels (red positive, blue
# negative).
first = ae.module_.encoder.branch[0].weight.detach().cpu().numpy()
print("first-layer weights:", first.shape)
fig, axes = plt.subplots(4, 8, figsize=(8, 4.2))
for ax, weights in zip(axes.ravel(), first):
    limit = np.abs(weights).max()
    ax.imshow(weights.reshape(8, 8), cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("weights of the first 32 units of the first hidden layer")
fig.tight_layout()
plt.show()

# %%
# Most of these look close to random: this network starts as PCA, its
# linear map carries most of the reconstruction, and the branch only
# learns what PCA misses, starting from random weights. The linear map's
# weights (one image per code unit)
# are PCA's components, moved on by training.
linear = ae.module_.encoder.linear.weight.detach().cpu().numpy()
fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
for ax, weights in zip(axes.ravel(), linear):
    limit = np.abs(weights).max()
    ax.imshow(weights.reshape(8, 8), cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("weights of the encoder's linear map, one image per code unit")
fig.tight_layout()
plt.show()

# %%
# A hidden layer's activations
# ----------------------------
# ``transform_hidden(X, layer=1)`` returns the 32 activations of the second
# hidden layer for each digit. Their mean over the digits of each class
# shows which units respond to which digits.
H = ae.transform_hidden(X, layer=1)
print("second hidden layer:", H.shape)
means = np.array([H[y == digit].mean(axis=0) for digit in range(10)])
fig, ax = plt.subplots(figsize=(8, 3))
image = ax.imshow(means, aspect="auto", cmap="viridis")
ax.set_yticks(range(10))
ax.set_ylabel("digit")
ax.set_xlabel("unit of the second hidden layer")
fig.colorbar(image, ax=ax, label="mean activation")
fig.tight_layout()
plt.show()

# %%
# Feature maps of a convolutional autoencoder
# -------------------------------------------
# With ``input_shape=(channels, height, width)``, ``transform_hidden``
# returns feature maps, here 8 maps of 4x4 after the first convolution
# (5x5 kernels, stride 2) for one digit. The images can be given as an
# array of shape ``(n_samples, 1, 8, 8)``.
images = X.reshape(-1, 1, 8, 8)
conv = AutoencoderTransformer(
    n_components=16, input_shape=(1, 8, 8), hidden_layer_sizes=(8, 16),
    conv_kernel_size=5, conv_strides=2, output_activation="logistic",
    learning_rate=3e-3, batch_size=64, max_iter=30, random_state=0,
).fit(images)
maps = conv.transform_hidden(images[:1], layer=0)
print("feature maps:", maps.shape)
fig, axes = plt.subplots(1, 9, figsize=(9, 1.3))
axes[0].imshow(images[0, 0], cmap="gray_r")
axes[0].set_title("input", fontsize=8)
for i, ax in enumerate(axes[1:]):
    ax.imshow(maps[0, i], cmap="viridis")
    ax.set_title(f"map {i}", fontsize=8)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()
