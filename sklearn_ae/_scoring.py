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
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Or ``(n_samples, *input_shape)`` for estimators that take shaped
        rows (images, sequences): compared with the reconstruction as flat
        rows, as ``inverse_transform`` returns them.
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
    # Sparse X (which the estimators take) and shaped rows were refused by
    # a 2-d dense check, although the estimator had just scored them.
    X, X_rec = (_flat_dense(values) for values in (X, X_rec))
    if X.shape != X_rec.shape:
        raise ValueError(
            f"inverse_transform returned shape {X_rec.shape} for X of {X.shape} "
            "values per row: no reconstruction to compare with."
        )
    return -float(np.mean((X - X_rec) ** 2))


def _flat_dense(values):
    """``values`` as a dense float64 array of flat rows."""
    if hasattr(values, "toarray"):
        values = values.toarray()
    values = check_array(values, dtype=np.float64, allow_nd=True)
    return values.reshape(len(values), -1)
