"""
=====================================================================
Outlier detection: ROC curves and the contamination threshold
=====================================================================

:class:`~sklearn_ae.AEOutlierDetector` scores rows by how badly a small
ensemble of autoencoders reconstructs them, plus how easily an isolation
forest isolates them (each standardized on the training rows; the second
catches rows that reconstruct well yet hold rare values), with the contract of
:class:`~sklearn.ensemble.IsolationForest`: ``score_samples`` is higher for
more normal rows, ``decision_function`` is negative for outliers, ``predict``
returns +1 or -1. We follow ADBench's protocol on its *cardio* set
(cardiotocography records; 1831 rows, 21 features, about 10 % outliers):
fit on 70 % of the rows without labels, and rank the other 30 %. Where the
file is missing we make up a set with the same shape.

The file ``6_cardio.npz`` comes from the ADBench repository
(https://github.com/Minqi824/ADBench, folder ``adbench/datasets``); this
example looks for it in a folder ``shared/datasets/adbench`` beside the
project (or in any folder above this file).
"""

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import RocCurveDisplay, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_ae import AEOutlierDetector

# Look for shared/datasets/adbench in this file's folder and every folder
# above it (the gallery runs a copy of this file from inside docs/).
try:
    here = Path(__file__).resolve().parent
except NameError:  # run interactively
    here = Path.cwd()
candidates = [d / "shared" / "datasets" / "adbench" / "6_cardio.npz" for d in [here, *here.parents]]
path = next((p for p in candidates if p.exists()), candidates[0])
if path.exists():
    data = np.load(path)
    X, y = data["X"], data["y"].astype(int)  # y: 1 = outlier
    source = "ADBench 6_cardio"
else:
    # Made-up stand-in: rows near a curved 3-D manifold; the outliers are
    # such rows with four features replaced by random values.
    rng = np.random.RandomState(0)
    W = rng.normal(size=(3, 21))
    rows = np.tanh(rng.normal(size=(1831, 3)) @ W) + 0.2 * rng.normal(size=(1831, 21))
    inliers, outliers = rows[:1655], rows[1655:]
    for row in outliers:
        row[rng.choice(21, size=4, replace=False)] = rng.uniform(-1, 1, size=4)
    X, y = np.r_[inliers, outliers], np.r_[np.zeros(1655, int), np.ones(176, int)]
    source = "made-up data (6_cardio.npz not found)"
print(f"{source}: {X.shape[0]} rows, {X.shape[1]} features, {y.mean():.1%} outliers")

X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)


# %%
# Three detectors, each fitted without labels
# -------------------------------------------
# PCA's outlier score is the reconstruction error of standardized rows from
# their leading components.
class PCAReconstructionError:
    """Negative squared reconstruction error of standardized rows (higher = more normal)."""

    def __init__(self, n_components):
        self.model = make_pipeline(StandardScaler(), PCA(n_components))

    def fit(self, X):
        self.model.fit(X)
        return self

    def score_samples(self, X):
        Z = self.model[0].transform(X)
        residual = Z - self.model[1].inverse_transform(self.model[1].transform(Z))
        return -(residual ** 2).sum(axis=1)


detectors = {
    "AEOutlierDetector": AEOutlierDetector(random_state=0),
    "IsolationForest": IsolationForest(random_state=0),
    "PCA reconstruction error": PCAReconstructionError(n_components=5),
}
for detector in detectors.values():
    detector.fit(X_train)

# %%
# ROC curves on the held-out rows
# -------------------------------
# Outlyingness is minus ``score_samples``. The figure shows, for every
# threshold, the share of held-out outliers caught against the share of
# inliers flagged; the area under each curve (AUC) is in the legend.
fig, ax = plt.subplots(figsize=(5.5, 5))
for name, detector in detectors.items():
    outlyingness = -detector.score_samples(X_test)
    RocCurveDisplay.from_predictions(y_test, outlyingness, name=name, ax=ax)
    print(f"{name:26s} held-out ROC-AUC {roc_auc_score(y_test, outlyingness):.3f}")
ax.plot([0, 1], [0, 1], color="0.7", ls=":")
ax.set_title(source)
plt.show()

# %%
# The threshold that ``contamination`` sets
# -----------------------------------------
# ``score_samples`` does not depend on ``contamination``; only the threshold
# ``offset_`` does. With ``'auto'`` it is Tukey's lower fence of the
# training scores; with a float it is that quantile of the training scores.
# The figure shows the training rows' outlyingness (minus ``score_samples``:
# the standardized reconstruction error plus half the standardized isolation
# score, about 0 for a typical row; on a scale that is linear near 0 and
# logarithmic in the long right tail) and both thresholds: rows right of a
# line are predicted outliers (``predict`` gives -1).
auto = detectors["AEOutlierDetector"]
ten_percent = AEOutlierDetector(contamination=0.1, random_state=0).fit(X_train)
outlyingness = -auto.score_samples(X_train)
fig, ax = plt.subplots(figsize=(7, 3.4))
bins = np.sinh(np.linspace(np.arcsinh(outlyingness.min()), np.arcsinh(outlyingness.max()), 60))
ax.hist(outlyingness[y_train == 0], bins=bins, alpha=0.6, label="inliers")
ax.hist(outlyingness[y_train == 1], bins=bins, alpha=0.6,
        label="outliers (labels unused in fit)")
for detector, label, color in [(auto, "contamination='auto'", "C3"),
                               (ten_percent, "contamination=0.1", "k")]:
    ax.axvline(-detector.offset_, color=color, ls="--", label=label)
    flagged = detector.predict(X_test) == -1
    print(f"{label:22s} offset_ {detector.offset_:8.3f}: {flagged.mean():.1%} of held-out rows "
          f"flagged, {y_test[flagged].mean():.1%} of them true outliers")
ax.set_xscale("symlog")
ax.set_xlabel("outlyingness of the training rows (-score_samples)")
ax.set_ylabel("rows")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
