"""
=====================================================================
Generating digits with a VAE, and its held-out likelihood
=====================================================================

A VAE is a density model: it can draw new data, and it gives each sample a
log-likelihood (a lower bound on it) in the units of ``X``, on the same
scale as :meth:`PCA.score <sklearn.decomposition.PCA.score>` and
:meth:`FactorAnalysis.score <sklearn.decomposition.FactorAnalysis.score>`.
We fit all three to the digits, compare their held-out log-likelihoods, and
look at digits the VAE generates.
"""

# %%
# Continuous pixels
# -----------------
# The digits' pixels are integers from 0 to 16. A density of integers is
# unbounded (a model can put all its mass on the integers), so, as is usual
# for density models of images, we add uniform noise in [0, 1) to every
# pixel ("dequantization"); all three models see the same data.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_ae import VAETransformer

warnings.filterwarnings("ignore", category=ConvergenceWarning)

rng = np.random.RandomState(0)
X, _ = load_digits(return_X_y=True)
X = X + rng.uniform(size=X.shape)
X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)

n_components = 8
models = {
    "PCA": PCA(n_components=n_components),
    "FactorAnalysis": FactorAnalysis(n_components=n_components, random_state=0),
    "VAE": VAETransformer(n_components=n_components, hidden_layer_sizes=(128,),
                          learning_rate=3e-3, batch_size=64, max_iter=80, random_state=0),
}
scores = {}
for name, model in models.items():
    scores[name] = model.fit(X_train).score(X_test)
    print(f"{name:15s} held-out log-likelihood: {scores[name]:8.1f} nats per digit")
vae = models["VAE"]
iwae = vae.set_params(n_importance_samples=100).score(X_test)
vae.set_params(n_importance_samples=1)
print(f"VAE, importance-weighted bound (100 draws): {iwae:8.1f} nats per digit")

# %%
# The figure shows each model's mean held-out log-likelihood (higher is
# better); for the VAE it is the ELBO, a lower bound on its log-likelihood.
fig, ax = plt.subplots(figsize=(5, 3))
ax.barh(list(scores), list(scores.values()), color=["C7", "C7", "C3"])
ax.set_xlabel("held-out log-likelihood (nats per digit)")
ax.set_xlim(min(scores.values()) - 20, max(scores.values()) + 20)
fig.tight_layout()
plt.show()

# %%
# New digits
# ----------
# Top rows: decoder means of latent points drawn from the prior,
# ``inverse_transform(z)`` with ``z ~ N(0, I)``: the model's picture of a
# typical digit for each ``z``. Bottom rows: :meth:`~sklearn_ae.VAETransformer.sample`,
# which draws from the whole model, the decoder's per-pixel noise included
# (see its docstring), so its samples are grainier than the means.
z = np.random.RandomState(1).standard_normal((20, n_components))
means = vae.inverse_transform(z)
samples = vae.sample(20, random_state=2)
fig, axes = plt.subplots(4, 10, figsize=(10, 4.4))
for i, image in enumerate(np.r_[means, samples]):
    ax = axes.ravel()[i]
    ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=17)
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("means", fontsize=9)
axes[2, 0].set_ylabel("sample", fontsize=9)
plt.show()
