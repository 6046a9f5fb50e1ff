"""
=====================================================================
GridSearchCV chooses between PCA and an autoencoder in a Pipeline
=====================================================================

An autoencoder is one more candidate for the reduction step of a
:class:`~sklearn.pipeline.Pipeline`. Here a grid search picks the reducer
and its code size for a classifier of the digits by cross-validated
accuracy; with ``set_output(transform="pandas")`` the codes travel through
the pipeline as a DataFrame with named columns.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from sklearn_ae import AutoencoderTransformer

warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, y = load_digits(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

pipe = Pipeline([
    ("scale", MinMaxScaler()),
    ("reduce", PCA()),
    ("classify", LogisticRegression(max_iter=2000)),
]).set_output(transform="pandas")

autoencoder = AutoencoderTransformer(
    hidden_layer_sizes=(64,), standardize=False, learning_rate=3e-3,
    batch_size=64, max_iter=30, random_state=0,
)
# The pipeline's set_output reaches the steps it holds now; the candidates
# that the search puts in the "reduce" step need their own.
param_grid = {
    "reduce": [PCA().set_output(transform="pandas"),
               autoencoder.set_output(transform="pandas")],
    "reduce__n_components": [4, 8, 16],
}
search = GridSearchCV(pipe, param_grid, cv=3).fit(X_train, y_train)
print("chosen:", search.best_params_)
print(f"held-out accuracy of the chosen pipeline: {search.score(X_test, y_test):.3f}")

# %%
# The codes as a DataFrame
# ------------------------
# Everything before the classifier, applied to three digits: the columns are
# named after the reducer (``get_feature_names_out``).
codes = search.best_estimator_[:-1].transform(X_test.iloc[:3])
print(type(codes).__name__)
print(codes.round(2))

# %%
# The figure shows the cross-validated accuracy of each candidate, with one
# standard deviation over the three folds.
results = pd.DataFrame({
    "reducer": [type(p["reduce"]).__name__ for p in search.cv_results_["params"]],
    "n_components": search.cv_results_["param_reduce__n_components"].astype(int),
    "accuracy": search.cv_results_["mean_test_score"],
    "std": search.cv_results_["std_test_score"],
})
fig, ax = plt.subplots(figsize=(6, 3.6))
width = 0.38
for k, (reducer, part) in enumerate(results.groupby("reducer")):
    positions = np.arange(len(part)) + (k - 0.5) * width
    ax.bar(positions, part["accuracy"], width, yerr=part["std"], label=reducer, capsize=3)
ax.set_xticks(np.arange(3), [f"{n} components" for n in sorted(results["n_components"].unique())])
ax.set_ylim(results["accuracy"].min() - 0.1, 1.0)
ax.set_ylabel("CV accuracy")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()
