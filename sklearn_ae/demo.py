"""Demo: an autoencoder next to PCA on scikit-learn's digits.

Run with ``python -m sklearn_ae.demo``. ``GridSearchCV`` chooses between
``PCA`` and ``AutoencoderTransformer`` at the same ``n_components`` as the
reduction step of a ``Pipeline``, by 3-fold cross-validated reconstruction
error; the demo prints each one's error (mean and standard deviation over
the folds, and each fold's) and says in words which one won and why.
"""

import argparse
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from sklearn_ae import AutoencoderTransformer, neg_reconstruction_error


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=200)
    args = parser.parse_args(argv)
    X, _ = load_digits(return_X_y=True)
    # Out of range, every fit failed and the demo announced a winner from NaN
    # scores (exit status 0).
    if not 1 <= args.n_components <= X.shape[1]:
        parser.error(f"--n-components must be in [1, {X.shape[1]}], got {args.n_components}")
    if args.max_iter < 1:
        parser.error(f"--max-iter must be at least 1, got {args.max_iter}")
    warnings.simplefilter("ignore", ConvergenceWarning)

    k = args.n_components
    cv = KFold(n_splits=3, shuffle=True, random_state=0)
    print(f"digits: {X.shape[0]} rows, {X.shape[1]} features, n_components={k}; "
          "3-fold cross-validation")
    print("reconstruction error on the held-out fold (mean squared error per "
          "pixel, lower is better), mean +- std over 3 folds:")
    reducers = {
        "PCA": PCA(n_components=k),
        # Defaults: it starts as PCA (on its standardized pixels) and keeps
        # what its own validation rows say improves on it.
        "AutoencoderTransformer": AutoencoderTransformer(
            n_components=k, max_iter=args.max_iter, random_state=0
        ),
    }
    # One GridSearchCV over the Pipeline's reduction step: its 3 folds give
    # each candidate's cross-validated error, and its choice is the winner.
    grid = GridSearchCV(
        Pipeline([("reduce", PCA())]),
        {"reduce": list(reducers.values())},
        scoring=neg_reconstruction_error,
        cv=cv,
        refit=False,  # the choice is the point here, not a model refitted on all rows
        error_score="raise",  # a failed fit is an error, not a NaN score
    )
    grid.fit(X)
    results = grid.cv_results_
    errors = {}
    for i, params in enumerate(results["params"]):
        name = type(params["reduce"]).__name__
        errors[name] = -np.array([results[f"split{f}_test_score"][i] for f in range(3)])
        print(f"  {name:<24} {errors[name].mean():8.3f} +- {errors[name].std():.3f}"
              f"   folds: {' '.join(f'{e:.3f}' for e in errors[name])}"
              f"   (fit {results['mean_fit_time'][i]:.1f} s per fold)")

    ae, pca = errors["AutoencoderTransformer"], errors["PCA"]
    wins = int(np.sum(ae < pca))
    gain = 100 * (pca.mean() - ae.mean()) / pca.mean()
    if gain > 0:
        print(f"The autoencoder's mean error is {gain:.1f}% below PCA's, and it "
              f"is lower on {wins} of 3 folds.")
    else:
        print(f"PCA's mean error is {-gain:.1f}% below the autoencoder's; the "
              f"autoencoder is lower on {wins} of 3 folds.")

    winner = type(grid.best_params_["reduce"]).__name__
    loser = "PCA" if winner != "PCA" else "AutoencoderTransformer"
    print(
        f"Winner: {winner}. GridSearchCV(Pipeline([('reduce', PCA or "
        "autoencoder)]), scoring=neg_reconstruction_error) keeps the candidate "
        f"with the lowest mean error on the held-out folds: "
        f"{errors[winner].mean():.3f} against {errors[loser].mean():.3f} for {loser}."
    )
    if winner == "AutoencoderTransformer":
        print(
            "Why: the autoencoder starts from PCA's solution (its linear paths hold "
            "PCA's components, its nonlinear branches start at zero) and early "
            "stopping keeps an epoch only when it beats that start on validation "
            "rows, so what it adds is the nonlinear structure of the digits that "
            f"a linear subspace of dimension {k} cannot reconstruct."
        )
    else:
        print(
            "Why: on these folds the nonlinear branches did not find structure "
            "beyond PCA's linear subspace that carries over to unseen rows, and "
            "PCA reaches its error without training; the autoencoder, which starts "
            "from PCA, ends close to it."
        )
    spread = max(ae.std(), pca.std())
    if abs(ae.mean() - pca.mean()) < spread:
        print(f"Caution: the difference ({abs(ae.mean() - pca.mean()):.3f}) is "
              f"smaller than the spread over folds ({spread:.3f}).")


if __name__ == "__main__":
    main()
