"""Demo: an autoencoder next to PCA on scikit-learn's digits.

Run with ``python -m sklearn_ae.demo``. It fits ``PCA`` and
``AutoencoderTransformer`` at the same ``n_components``, prints their
held-out reconstruction errors, then lets ``GridSearchCV`` choose between
them as the reduction step of a ``Pipeline``.
"""

import argparse
import time
import warnings

from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline

from sklearn_ae import AutoencoderTransformer, neg_reconstruction_error


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=200)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)

    X, _ = load_digits(return_X_y=True)
    X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)
    k = args.n_components
    print(f"digits: {X_train.shape[0]} training / {X_test.shape[0]} held-out rows, "
          f"{X.shape[1]} features, n_components={k}")
    print("held-out reconstruction error (mean squared error per pixel, lower is better):")
    reducers = {
        "PCA": PCA(n_components=k),
        # Defaults: it starts as PCA (on its standardized pixels) and keeps
        # what the held-out validation rows say improves on it.
        "AutoencoderTransformer": AutoencoderTransformer(
            n_components=k, max_iter=args.max_iter, random_state=0
        ),
    }
    for name, reducer in reducers.items():
        start = time.perf_counter()
        reducer.fit(X_train)
        seconds = time.perf_counter() - start
        error = -neg_reconstruction_error(reducer, X_test)
        print(f"  {name:<24} {error:8.3f}   (fit {seconds:.1f} s)")

    print("GridSearchCV over Pipeline([('reduce', ...)]), 3-fold, "
          "scoring=neg_reconstruction_error:")
    grid = GridSearchCV(
        Pipeline([("reduce", PCA())]),
        {"reduce": list(reducers.values())},
        scoring=neg_reconstruction_error,
        cv=3,
    )
    grid.fit(X_train)
    for params, score in zip(grid.cv_results_["params"], grid.cv_results_["mean_test_score"]):
        print(f"  {type(params['reduce']).__name__:<24} {-score:8.3f}")
    winner = type(grid.best_params_["reduce"]).__name__
    print(f"winner: {winner} (held-out error {-grid.score(X_test):.3f})")


if __name__ == "__main__":
    main()
