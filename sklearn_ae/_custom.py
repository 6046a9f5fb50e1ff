"""User-given encoder and decoder networks, with ``encoder__*``/``decoder__*``
parameters in skorch's style: what every estimator that takes them shares."""

import copy
import inspect

import torch

# Parameters of user-given networks, passed through in skorch's style.
_NETWORK_PREFIXES = ("encoder__", "decoder__")


def run_network(fn, x, role):
    """Return ``fn(x)``; a torch error becomes a ``ValueError`` naming ``role``."""
    try:
        return fn(x)
    except RuntimeError as exc:
        raise ValueError(
            f"{role} failed on a batch of shape {tuple(x.shape)}: {exc}"
        ) from exc


class _CustomNetworksMixin:
    """The ``encoder``/``decoder`` parameters and their ``encoder__*`` and
    ``decoder__*`` settings, stored in ``_extra_params`` by ``__init__``.

    Not for direct use; mixed in on the left of an estimator class.
    """

    def _network_params(self, role):
        """Return the ``role__*`` parameters ('encoder' or 'decoder'), unprefixed."""
        prefix = role + "__"
        return {
            k[len(prefix) :]: v
            for k, v in vars(self).get("_extra_params", {}).items()
            if k.startswith(prefix)
        }

    def get_params(self, deep=True):
        """Get parameters for this estimator, ``encoder__*``/``decoder__*`` included.

        Parameters
        ----------
        deep : bool, default=True
            If True, will return the parameters for this estimator and
            contained subobjects that are estimators.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        params = super().get_params(deep=deep)
        params.update(vars(self).get("_extra_params", {}))
        return params

    def set_params(self, **params):
        """Set the parameters of this estimator, ``encoder__*``/``decoder__*`` included.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : estimator instance
            Estimator instance.
        """
        extra = vars(self).setdefault("_extra_params", {})
        for name in list(params):
            if name.startswith(_NETWORK_PREFIXES) or name in extra:
                extra[name] = params.pop(name)
        return super().set_params(**params)

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
        """Raise ``ValueError`` for extra parameters that are not
        ``encoder__*``/``decoder__*``, a network without its pair, or
        settings of a network that is not given."""
        for name in vars(self).get("_extra_params", {}):
            if not name.startswith(_NETWORK_PREFIXES):
                raise ValueError(
                    f"{name!r} is not a parameter of {type(self).__name__}; extra "
                    "keyword parameters must be encoder__* or decoder__* "
                    "parameters of custom networks."
                )
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
