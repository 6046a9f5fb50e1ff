"""Scorers that compare dimensionality reducers on a common scale."""

import numpy as np
from sklearn.utils.validation import check_array


def neg_reconstruction_error(estimator, X, y=None):
    """Return minus the mean squared reconstruction error of ``estimator`` on X.

    Works with any fitted transformer (or pipeline of them) that has
    ``transform`` and ``inverse_transform`` (``PCA``, ``AutoencoderTransformer``,
    ...), so it can be passed as ``scoring=`` to
    :class:`~sklearn.model_selection.GridSearchCV` to choose between them.
    The error is averaged over samples and features, in the units of X.

    Parameters
    ----------
    estimator : fitted estimator with ``transform`` and ``inverse_transform``
    X : array-like of shape (n_samples, n_features)
    y : Ignored

    Returns
    -------
    score : float
        ``-mean((X - inverse_transform(transform(X))) ** 2)``; higher is better.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import PCA
    >>> from sklearn_ae import neg_reconstruction_error
    >>> X, _ = load_digits(return_X_y=True)
    >>> pca = PCA(n_components=8).fit(X)
    >>> round(neg_reconstruction_error(pca, X), 2)
    -6.12
    """
    X_rec = estimator.inverse_transform(estimator.transform(X))
    X = check_array(X, dtype=np.float64)
    return -float(np.mean((X - np.asarray(X_rec, dtype=np.float64)) ** 2))
