"""User-given encoder and decoder networks, with ``encoder__*``/``decoder__*``
parameters in skorch's style: what every estimator that takes them shares."""

import copy
import inspect

import torch

# Parameters of user-given networks, passed through in skorch's style.
_NETWORK_PREFIXES = ("encoder__", "decoder__")


def run_network(fn, x, role):
    """Return ``fn(x)``, a tensor; a torch error, or an output that is not
    one tensor, becomes a ``ValueError`` naming ``role``."""
    try:
        out = fn(x)
    except RuntimeError as exc:
        raise ValueError(
            f"{role} failed on a batch of shape {tuple(x.shape)}: {exc}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"{role} must return a single tensor, got {type(out).__name__} "
            "(a module such as nn.LSTM returns a tuple: wrap it in a module "
            "that returns the tensor to use)."
        )
    return out


class _CustomNetworksMixin:
    """The ``encoder``/``decoder`` parameters and their ``encoder__*`` and
    ``decoder__*`` settings, which the base estimator stores, exposes to
    ``get_params``/``set_params`` and checks like ``optimizer__*`` (a class
    using the mixin adds :data:`_NETWORK_PREFIXES` to its
    ``_param_prefixes``).

    Not for direct use; mixed in on the left of an estimator class.
    """

    def _network_params(self, role):
        """Return the ``role__*`` parameters ('encoder' or 'decoder'), unprefixed."""
        return self._prefixed_params(role + "__")

    def _custom_network(self, role, n_features):
        """Build the user's ``encoder`` or ``decoder`` from its parameters.

        A class (or factory) is called with the ``role__*`` parameters, plus
        ``n_features`` and ``n_components`` where its signature takes them
        and they are not set; a module instance is copied.
        """
        spec = getattr(self, role)
        params = self._network_params(role)
        if isinstance(spec, torch.nn.Module):
            if params:
                raise ValueError(
                    f"{role}__* parameters ({', '.join(sorted(params))}) need "
                    f"{role} to be a class, got a module instance."
                )
            return copy.deepcopy(spec)
        try:
            accepted = inspect.signature(spec).parameters
        except (TypeError, ValueError):
            accepted = {}
        for name, value in (("n_features", n_features), ("n_components", self.n_components)):
            if name in accepted and name not in params:
                params[name] = value
        try:
            network = spec(**params)
        except TypeError as exc:
            raise ValueError(
                f"{role}={getattr(spec, '__name__', spec)!r} could not be built "
                f"from the {role}__* parameters {params}: {exc}"
            ) from exc
        if not isinstance(network, torch.nn.Module):
            raise ValueError(
                f"{role} must build a torch.nn.Module, got {type(network).__name__}."
            )
        return network

    def _check_network_options(self):
        """Raise ``ValueError`` for a network without its pair, or settings
        of a network that is not given."""
        if (self.encoder is None) != (self.decoder is None):
            given, missing = (
                ("encoder", "decoder") if self.decoder is None else ("decoder", "encoder")
            )
            raise ValueError(
                f"{given} was given without {missing}: custom networks need both "
                "encoder and decoder."
            )
        for role in ("encoder", "decoder"):
            params = self._network_params(role)
            if params and getattr(self, role) is None:
                raise ValueError(
                    f"{role}__{next(iter(params))} is set but {role} is None; "
                    f"{role}__* parameters configure a custom {role} class."
                )
