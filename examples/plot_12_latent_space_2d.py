"""
===========================================================
A 2-D latent space: autoencoder against VAE
===========================================================

With a code of two numbers we can look at the whole latent space: where the
digits of each class land, and what the decoder makes of every point of a
grid. A plain autoencoder places the classes wherever its loss likes, with
gaps between them and no say over the points in between; a variational
autoencoder is trained to keep its codes close to a standard normal
distribution, so the latent space is centred and any point drawn from that
distribution has been trained to decode to something like the data: the
reason VAEs are used to generate data.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from sklearn_ae import AutoencoderTransformer, VAETransformer

warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, y = load_digits(return_X_y=True)
X = X / 16  # pixels in [0, 1]

ae = AutoencoderTransformer(
    n_components=2, hidden_layer_sizes=(64, 32), standardize=False,
    learning_rate=3e-3, batch_size=64, max_iter=60, random_state=0,
).fit(X)
# Pixels in [0, 1] read as probabilities: a Bernoulli decoder, as in the
# Keras VAE tutorial.
vae = VAETransformer(
    n_components=2, hidden_layer_sizes=(64, 32), likelihood="bernoulli",
    learning_rate=3e-3, batch_size=64, max_iter=60, random_state=0,
).fit(X)
print(f"VAE trained {vae.n_iter_} epochs (early stopping on a validation split)")


# %%
# Codes and decoded grids
# -----------------------
# Left: the codes of all digits, coloured by class (``transform``; the VAE's
# is the posterior mean). Right: a 15x15 grid of latent points decoded with
# ``inverse_transform``: for the autoencoder, spread evenly over the range
# its codes take; for the VAE, at evenly spaced quantiles of its N(0, 1)
# prior. Nothing in the autoencoder's training says what the points between
# its clusters of codes decode to; the VAE's prior covers the whole grid,
# and its KL term keeps the codes near the origin (printed below).
def decoded_grid(model, axis_values):
    z1, z2 = np.meshgrid(axis_values[0], axis_values[1][::-1])
    images = model.inverse_transform(np.c_[z1.ravel(), z2.ravel()]).reshape(-1, 8, 8)
    n = len(axis_values[0])
    return images.reshape(n, n, 8, 8).transpose(0, 2, 1, 3).reshape(8 * n, 8 * n)


n = 15
Z_ae = ae.transform(X)
ae_axes = [np.linspace(*np.percentile(Z_ae[:, j], [1, 99]), n) for j in range(2)]
vae_axes = [norm.ppf(np.linspace(0.03, 0.97, n))] * 2

fig, axes = plt.subplots(2, 2, figsize=(10, 9.5), layout="constrained")
for row, (name, model, grid_axes) in enumerate(
    [("autoencoder", ae, ae_axes), ("VAE", vae, vae_axes)]
):
    Z = model.transform(X)
    points = axes[row, 0].scatter(Z[:, 0], Z[:, 1], c=y, cmap="tab10", s=5)
    axes[row, 0].set_title(f"{name}: codes of the digits")
    axes[row, 0].set_xlabel("z1")
    axes[row, 0].set_ylabel("z2")
    axes[row, 1].imshow(decoded_grid(model, grid_axes), cmap="gray_r", vmin=0, vmax=1)
    axes[row, 1].set_title(f"{name}: decoded 15x15 grid")
    axes[row, 1].axis("off")
fig.colorbar(points, ax=axes[:, 0], ticks=range(10), label="digit", shrink=0.5, location="left")
plt.show()

# %%
# How far from the prior are the codes? The VAE's posterior means stay near
# the origin with a spread close to one; the autoencoder's codes have
# whatever scale training gave them.
for name, model in [("autoencoder", ae), ("VAE", vae)]:
    Z = model.transform(X)
    print(f"{name:12s} code mean {np.round(Z.mean(axis=0), 2)}, std {np.round(Z.std(axis=0), 2)}")
