"""
=====================================================================
Your own encoder and decoder, tuned with GridSearchCV
=====================================================================

Any torch modules can replace the built-in networks. Pass the classes as
``encoder`` and ``decoder``; the estimator builds them at fit with their
``encoder__*`` and ``decoder__*`` parameters (skorch's convention) and gives
them ``n_features`` and ``n_components`` when their signatures ask for them.
Scaling, early stopping, the scores and the scikit-learn API work as with the
built-in networks, and :class:`~sklearn.model_selection.GridSearchCV`
reaches the modules' own parameters.
"""

# %%
# Two small modules
# -----------------
# The encoder maps a batch ``(n, n_features)`` to codes ``(n, n_components)``;
# the decoder maps codes back. Here each has one hidden layer whose width and
# activation are parameters.
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from torch import nn

from sklearn_ae import AutoencoderTransformer

warnings.filterwarnings("ignore", category=ConvergenceWarning)


class Encoder(nn.Module):
    def __init__(self, n_features, n_components, n_hidden=32, activation="relu"):
        super().__init__()
        act = nn.ReLU() if activation == "relu" else nn.Tanh()
        self.net = nn.Sequential(nn.Linear(n_features, n_hidden), act,
                                 nn.Linear(n_hidden, n_components))

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, n_features, n_components, n_hidden=32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_components, n_hidden), nn.ReLU(),
                                 nn.Linear(n_hidden, n_features))

    def forward(self, z):
        return self.net(z)


X, _ = load_digits(return_X_y=True)
X = X / 16
X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)

ae = AutoencoderTransformer(
    n_components=8, encoder=Encoder, decoder=Decoder, standardize=False,
    learning_rate=3e-3, batch_size=64, max_iter=30, random_state=0,
)

# %%
# A grid over the modules' parameters
# -----------------------------------
# Without labels: ``score`` is the mean negative reconstruction error, so
# the search needs no ``scoring`` argument.
grid = GridSearchCV(
    ae,
    {"encoder__n_hidden": [16, 64], "decoder__n_hidden": [16, 64],
     "encoder__activation": ["relu", "tanh"]},
    cv=3,
).fit(X_train)
print("best parameters:", grid.best_params_)
print(f"held-out reconstruction error of the refitted best model: {-grid.score(X_test):.4f}")

# %%
# The figure shows the cross-validated reconstruction error (lower is better)
# of each combination of hidden widths, for each encoder activation.
results = pd.DataFrame(grid.cv_results_["params"])
results["error"] = -grid.cv_results_["mean_test_score"]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True, layout="constrained")
vmin, vmax = results["error"].min(), results["error"].max()
for ax, (activation, part) in zip(axes, results.groupby("encoder__activation")):
    table = part.pivot(index="encoder__n_hidden", columns="decoder__n_hidden", values="error")
    image = ax.imshow(table.to_numpy(), cmap="viridis_r", vmin=vmin, vmax=vmax)
    for (i, j), value in np.ndenumerate(table.to_numpy()):
        ax.text(j, i, f"{value:.4f}", ha="center", va="center", color="w", fontsize=9)
    ax.set_xticks(range(len(table.columns)), table.columns)
    ax.set_yticks(range(len(table.index)), table.index)
    ax.set_xlabel("decoder__n_hidden")
    ax.set_title(f"encoder__activation={activation!r}")
axes[0].set_ylabel("encoder__n_hidden")
fig.colorbar(image, ax=axes, label="CV reconstruction error")
plt.show()
