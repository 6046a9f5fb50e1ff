"""Samples with a shape (images, windows of a time series): the checks and
the flattening that every estimator with ``input_shape`` shares."""

from numbers import Integral

import numpy as np


def check_input_shape(shape, n_features, hidden_sizes, batch_norm):
    """Raise ``ValueError`` unless ``shape`` is (C, H, W) or (T, F) of
    positive ints that holds ``n_features`` values per row, with what the
    built-in network for it needs."""
    if not (
        isinstance(shape, tuple | list)
        and len(shape) in (2, 3)
        and all(isinstance(s, Integral) and s > 0 for s in shape)
    ):
        raise ValueError(
            "input_shape must be None, (channels, height, width) for images "
            "or (n_timesteps, n_channels) for sequences, with positive "
            f"integers; got {shape!r}."
        )
    if int(np.prod(shape)) != n_features:
        raise ValueError(
            f"input_shape={tuple(shape)} holds {int(np.prod(shape))} values "
            f"per row but X has {n_features} features."
        )
    if len(shape) == 2 and not hidden_sizes:
        raise ValueError(
            "hidden_layer_sizes must name at least one LSTM layer with "
            f"input_shape={tuple(shape)} (n_timesteps, n_channels); got ()."
        )
    if len(shape) == 2 and batch_norm:
        raise ValueError(
            "batch_norm=True is not available for the LSTM network of "
            f"input_shape={tuple(shape)} (n_timesteps, n_channels)."
        )


def check_conv_params(conv_kernel_size, conv_strides, input_shape, n_conv):
    """Raise ``ValueError`` for a bad ``conv_kernel_size`` or ``conv_strides``,
    or one set without a 3-D ``input_shape`` (``n_conv`` convolutions)."""
    defaults = {"conv_kernel_size": 3, "conv_strides": 2}
    is_conv = input_shape is not None and len(input_shape) == 3
    for name, value in (("conv_kernel_size", conv_kernel_size), ("conv_strides", conv_strides)):
        values = [value] if isinstance(value, Integral) else list(value)
        if not all(isinstance(v, Integral) and v > 0 for v in values):
            raise ValueError(
                f"{name} must be a positive int or a sequence of positive ints "
                f"(one per convolution), got {value!r}."
            )
        if not is_conv and value != defaults[name]:
            raise ValueError(
                f"{name}={value!r} sets the convolutions of input_shape="
                "(channels, height, width); there are none with "
                f"input_shape={input_shape!r}."
            )
        if is_conv and not isinstance(value, Integral) and len(values) != n_conv:
            raise ValueError(
                f"{name}={value!r} must give one value per convolution: "
                f"hidden_layer_sizes has {n_conv}."
            )


def as_ints(value):
    """An int, or a sequence of them as a list of ints."""
    return int(value) if isinstance(value, Integral) else [int(v) for v in value]


def flatten_shaped(X, shape):
    """Return ``(n_samples, *shape)`` arrays as ``(n_samples, prod(shape))``
    rows (C order: time-major for windows); anything else as it is."""
    if (
        shape is None
        or not isinstance(shape, tuple | list)
        or not all(isinstance(s, Integral) for s in shape)
        or hasattr(X, "tocsr")
        or hasattr(X, "iloc")
    ):
        return X
    if not hasattr(X, "ndim"):
        if not isinstance(X, list | tuple):
            return X
        X = np.asarray(X)
    if X.ndim <= 2:
        return X
    if tuple(X.shape[1:]) != tuple(int(s) for s in shape):
        raise ValueError(
            f"X has shape {tuple(X.shape)}, but input_shape={tuple(shape)} "
            f"accepts arrays of shape (n_samples, {', '.join(map(str, shape))}) "
            f"or flat rows (n_samples, {int(np.prod(shape))})."
        )
    return np.asarray(X).reshape(len(X), -1)
