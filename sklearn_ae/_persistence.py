"""Saving fitted estimators in a format that runs no code on load.

One `safetensors <https://huggingface.co/docs/safetensors>`_ file holds the
tensors (the network's weights and buffers, Adam's state, fitted numeric
arrays such as ``mean_``) and, in its metadata, a JSON document with the
estimator's class name, its parameters, its scalar fitted state and the
training history. Loading parses these two formats only: it never unpickles,
and it never imports a module. The estimator classes are looked up in this
package's own table; user-given network classes (``encoder``/``decoder``)
must be handed to :func:`load` in ``trusted``.

A SHA-256 checksum over the JSON and every tensor catches a damaged or
edited file. It is not a signature: whoever can write the file can
recompute it, so it guards integrity, not authenticity; safety against a
hostile file comes from the format, which cannot hold code.
"""

import errno
import hashlib
import json
import os
import warnings

import numpy as np
import scipy.sparse as sp
import torch

FORMAT = "sklearn_ae"
FORMAT_VERSION = 1


def _estimator_classes():
    """The classes a file may name: this package's estimators, and the linear
    models a fitted VAETransformer keeps as ``linear_model_`` (rebuilt from
    their parameters and fitted arrays, like ours; no code is loaded)."""
    from sklearn.decomposition import PCA, FactorAnalysis

    from ._autoencoder import AutoencoderTransformer
    from ._outlier import AEOutlierDetector
    from ._vae import VAETransformer

    return {
        cls.__name__: cls
        for cls in (
            AutoencoderTransformer, VAETransformer, AEOutlierDetector, PCA, FactorAnalysis
        )
    }


def _torch_optimizers():
    """The optimizer classes ``torch.optim`` exports."""
    return [
        obj
        for obj in vars(torch.optim).values()
        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer)
    ]


def _type_name(obj):
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


class _Writer:
    """Turns an estimator into JSON-able nodes and a dict of tensors."""

    def __init__(self):
        self.tensors = {}

    def tensor(self, key, value):
        # A copy: tied layers share weights, which safetensors refuses to write.
        self.tensors[key] = value.detach().to("cpu").clone(memory_format=torch.contiguous_format)
        return key

    def value(self, value, key):
        """Return the JSON node for ``value``; arrays go to ``self.tensors[key]``."""
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
            return int(value)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (float, np.floating)):
            return float(value)
        if isinstance(value, tuple):
            return {"__tuple__": [self.value(v, f"{key}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.value(v, f"{key}.{i}") for i, v in enumerate(value)]
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"__dict__": {k: self.value(v, f"{key}.{k}") for k, v in value.items()}}
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "biuf":
                return {"__array__": self.tensor(key, torch.from_numpy(np.ascontiguousarray(value)))}
            if value.dtype.kind in "OU" and all(isinstance(v, str) for v in value.flat):
                return {"__strings__": [str(v) for v in value.flat], "dtype": value.dtype.str}
        if isinstance(value, torch.Tensor):
            return {"__tensor__": self.tensor(key, value)}
        if isinstance(value, torch.device):
            return {"__device__": str(value)}
        if type(value).__name__ in _estimator_classes() and type(value) is _estimator_classes()[
            type(value).__name__
        ]:
            return {"__estimator__": self.estimator(value, key + ".")}
        if isinstance(value, torch.nn.Module):
            raise ValueError(
                f"{key.split('.')[-1] or key}: a network given as a module instance "
                f"({type(value).__name__}) cannot be saved without pickle; pass its "
                "class, with its settings as encoder__*/decoder__* parameters."
            )
        if isinstance(value, type) or callable(value):
            name = _type_name(value)
            if "<lambda>" in name or "<locals>" in name:
                # load could neither name it in trusted nor tell it from
                # another lambda or closure of the same name.
                raise ValueError(
                    f"{key.split('.')[-1] or key}={name.split(':')[-1]} is a lambda or a "
                    "function defined inside another, which the safe format "
                    "cannot name; define it at module level, or use pickle or joblib."
                )
            return {"__type__": name}
        raise ValueError(
            f"{key}={value!r} ({type(value).__name__}) cannot be saved in the safe "
            "format, which holds numbers, strings, arrays and this package's "
            "estimators; use pickle or joblib for it."
        )

    def estimator(self, est, prefix):
        params = est.get_params(deep=False)
        # Parameters changed with set_params since the fit: the file keeps
        # both, as a pickle does (the network is rebuilt from the fitted ones).
        at_fit = getattr(est, "_params_at_fit", {})
        changed = {
            k: v
            for k, v in at_fit.items()
            if k != "callbacks" and k in params and not _same_value(v, params[k])
        }
        if params.get("callbacks") is not None:
            warnings.warn(
                f"{type(est).__name__}: callbacks are not saved (they are code); "
                "the loaded estimator has callbacks=None.",
                UserWarning,
            )
            params["callbacks"] = None
        if not isinstance(params.get("random_state"), (type(None), int, np.integer)):
            raise ValueError(
                "random_state must be None or an int to be saved, got "
                f"{type(params['random_state']).__name__}."
            )
        node = {
            "class": type(est).__name__,
            "params": {k: self.value(v, f"{prefix}params.{k}") for k, v in params.items()},
        }
        if changed:
            node["params_at_fit"] = {
                k: self.value(v, f"{prefix}params_at_fit.{k}") for k, v in changed.items()
            }
        fitted = {
            k: v
            for k, v in vars(est).items()
            if k.endswith("_") and not k.startswith("_") and k != "net_"
        }
        if fitted or hasattr(est, "net_"):
            node["fitted"] = {
                k: self.value(v, f"{prefix}fitted.{k}") for k, v in fitted.items()
            }
        if hasattr(est, "net_"):
            node["net"] = self.net(est.net_, prefix + "net.")
        continuation = self.continuation(est, prefix + "continuation.")
        if continuation:
            node["continuation"] = continuation
        return node

    def continuation(self, est, prefix):
        """What a later ``partial_fit`` continues from, beyond the fitted
        attributes: the running moments of the scaling and the detector's
        recent rows (which set its ``offset_`` and score scales)."""
        from ._data import RunningScaling

        node = {}
        moments = vars(est).get("_scaling_moments")
        if isinstance(moments, RunningScaling):
            node["scaling_moments"] = self.value(
                {k.lstrip("_"): v for k, v in vars(moments).items()},
                f"{prefix}scaling_moments",
            )
        recent = vars(est).get("_recent_rows")
        if recent is not None and vars(est).get("_recent_owner") is est._recent_rows_owner():
            if sp.issparse(recent):
                recent = recent.tocsr()
                node["recent_rows"] = {"csr": self.value(
                    (recent.data, recent.indices, recent.indptr, tuple(recent.shape)),
                    f"{prefix}recent_rows",
                )}
            else:
                node["recent_rows"] = {"dense": self.value(recent, f"{prefix}recent_rows")}
        return node

    def net(self, net, prefix):
        module_state = net.module_.state_dict()
        for name, t in module_state.items():
            self.tensor(f"{prefix}module.{name}", t)
        optimizer = net.optimizer_.state_dict()
        for index, state in optimizer["state"].items():
            for name, t in state.items():
                self.tensor(f"{prefix}optimizer.{index}.{name}", torch.as_tensor(t))
        split = net.train_split
        return {
            "prefix": prefix,
            "module_state": sorted(module_state),
            "batch_size": int(net.batch_size),
            "max_epochs": int(net.max_epochs),
            "lr": float(net.lr),
            "split_seed": None if split is None else int(split.seed),
            "initial_loss": getattr(net, "initial_loss_", None),
            "optimizer_groups": _plain(optimizer["param_groups"]),
            "optimizer_states": {
                str(i): sorted(state) for i, state in optimizer["state"].items()
            },
            "criterion": {
                k: v
                for k, v in vars(net.criterion_).items()
                if not k.startswith("_") and isinstance(v, (bool, int, float, str))
            },
            "history": _plain_history(net.history),
        }


def _plain(value):
    """``value`` with tuples as lists and numpy scalars as Python numbers, or
    raise TypeError for anything JSON cannot hold."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(type(value).__name__)


def _plain_history(history):
    """The history's rows as JSON; entries JSON cannot hold are left out."""
    rows, dropped = [], set()
    for row in history:
        kept = {}
        for key, value in row.items():
            try:
                kept[key] = _plain(value)
            except TypeError:
                dropped.add(key)
        rows.append(kept)
    if dropped:
        warnings.warn(
            f"history entries {sorted(dropped)} hold values that are not numbers "
            "or strings and are not saved.",
            UserWarning,
        )
    return rows


def _checksum(header, tensors):
    digest = hashlib.sha256(header.encode("utf-8"))
    for name in sorted(tensors):
        t = tensors[name]
        digest.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save(estimator, path):
    """Save ``estimator`` to ``path`` in a format that runs no code on load.

    Writes one `safetensors <https://huggingface.co/docs/safetensors>`_
    file: the fitted network's weights and buffers, Adam's state and the
    fitted arrays as tensors; the parameters, the scalar fitted state and
    ``net_.history`` as JSON in its metadata. Read it back with
    :func:`load`. Unlike pickle, loading cannot run code from the file.

    Not saved: ``callbacks`` (code; the loaded estimator has
    ``callbacks=None``, with a warning at save), history entries that are not
    numbers or strings (with a warning). Parameters that are objects other
    than this package's estimators (a ``RandomState``, a module instance as
    ``encoder``) cannot be saved: a ``ValueError`` says which. Custom network
    classes (``encoder``/``decoder``) are saved by name and must be passed to
    :func:`load` in ``trusted``.

    Parameters
    ----------
    estimator : AutoencoderTransformer, VAETransformer or AEOutlierDetector
        Fitted or not.

    path : str or path-like
        File to write (conventionally ``*.safetensors``); overwritten.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    if type(estimator).__name__ not in _estimator_classes():
        raise ValueError(
            f"save handles {', '.join(sorted(_estimator_classes()))}; got "
            f"{type(estimator).__name__}."
        )
    writer = _Writer()
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "estimator": writer.estimator(estimator, ""),
    }
    header = json.dumps(document, sort_keys=True)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "document": header,
        "sha256": _checksum(header, writer.tensors),
    }
    path = os.fspath(path)
    _check_writable(path)
    try:
        save_file(writer.tensors, path, metadata=metadata)
    except SafetensorError as exc:  # an I/O error, worded by Rust
        raise OSError(f"could not write {path}: {exc}") from None


def _check_writable(path):
    """Raise the ``OSError`` that ``open(path, 'wb')`` would for a folder
    or a missing parent folder (safetensors raised its own error type,
    worded for its serializer)."""
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "save writes a file, not a folder", path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(errno.ENOENT, "no folder to save the file in", parent)


class _Reader:
    """Rebuilds an estimator from the JSON nodes and tensors of a file."""

    def __init__(self, tensors, trusted):
        self.tensors = tensors
        # torch's own optimizer classes (the optimizer parameter) are known.
        self.trusted = {_type_name(t): t for t in (*_torch_optimizers(), *trusted)}
        self.used = set()

    def tensor(self, key):
        if key not in self.tensors:
            raise ValueError(f"the file lacks the tensor {key!r}")
        self.used.add(key)
        return self.tensors[key]

    def value(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.value(v) for v in node]
        if not isinstance(node, dict) or len(node) not in (1, 2):
            raise ValueError(f"unexpected entry {node!r}")
        if "__tuple__" in node:
            return tuple(self.value(v) for v in node["__tuple__"])
        if "__dict__" in node:
            return {k: self.value(v) for k, v in node["__dict__"].items()}
        if "__array__" in node:
            return self.tensor(node["__array__"]).numpy().copy()
        if "__tensor__" in node:
            return self.tensor(node["__tensor__"]).clone()
        if "__strings__" in node:
            return np.array(node["__strings__"], dtype=np.dtype(str(node["dtype"])))
        if "__device__" in node:
            try:
                return torch.device(node["__device__"])
            except (RuntimeError, TypeError):
                raise ValueError(f"the file names an invalid device {node['__device__']!r}") from None
        if "__estimator__" in node:
            return self.estimator(node["__estimator__"])
        if "__type__" in node:
            name = node["__type__"]
            if name not in self.trusted:
                raise ValueError(
                    f"the file names the class or function {name!r} (a custom "
                    "network, noise function or optimizer); load never imports code: pass it as "
                    f"load(path, trusted=[{name.split(':')[-1]}]) if you trust it."
                )
            return self.trusted[name]
        raise ValueError(f"unexpected entry {node!r}")

    def estimator(self, node):
        classes = _estimator_classes()
        if node.get("class") not in classes:
            raise ValueError(f"the file holds an unknown estimator class {node.get('class')!r}")
        cls = classes[node["class"]]
        params = {k: self.value(v) for k, v in node["params"].items()}
        known = set(cls().get_params(deep=False))
        unknown = [
            k for k in params
            if k not in known and not k.startswith(getattr(cls, "_param_prefixes", ()))
        ]
        if unknown:
            raise ValueError(f"the file's parameters {unknown} are not parameters of {cls.__name__}")
        # Parameters the class gained after files were first written (and the
        # fitted attributes such a file lacks): the values that describe it.
        for name, value in getattr(cls, "_added_params", {}).items():
            params.setdefault(name, value)
        # Built with the parameters it was fitted with; those set since are
        # set again once the network is rebuilt.
        changed = {k: self.value(v) for k, v in node.get("params_at_fit", {}).items()}
        try:
            est = cls(**{**params, **changed})
        except TypeError as exc:
            raise ValueError(f"the file's parameters do not fit {cls.__name__}: {exc}") from None
        fitted = node.get("fitted", {})
        for name, value in fitted.items():
            # Only what save writes: public names ending in "_" that are not
            # the class's own (a method, a property).
            if not (name.endswith("_") and not name.startswith("_")) or hasattr(cls, name):
                raise ValueError(f"the file holds an unexpected fitted attribute {name!r}")
            setattr(est, name, self.value(value))
        if fitted:
            for name, value in getattr(cls, "_added_fitted", {}).items():
                if name not in fitted:
                    setattr(est, name, value)
        if "net" in node:
            try:
                self.net(est, node["net"])
            except (TypeError, RuntimeError) as exc:
                # A parameter of the wrong kind (n_components='abc') fails in
                # torch; say which, as fit would.
                try:
                    est._validate_params()
                except ValueError as invalid:
                    raise ValueError(f"the file's parameters are invalid: {invalid}") from None
                raise ValueError(
                    f"the file's network cannot be rebuilt from its parameters: {exc}"
                ) from None
        if changed:
            est._params_at_fit = est.get_params(deep=False)
            est.set_params(**{k: params[k] for k in changed})
        self.continuation(est, node.get("continuation", {}))
        return est

    def continuation(self, est, node):
        """Restore what :meth:`_Writer.continuation` saved; files without it
        continue as documented for them (moments rebuilt from the scaling,
        a detector's threshold from the next chunk)."""
        from ._data import RunningScaling

        if "scaling_moments" in node:
            fields = self.value(node["scaling_moments"])
            if not isinstance(fields, dict) or "mean" not in fields:
                raise ValueError("the file's scaling moments are malformed")
            moments = RunningScaling(len(fields["mean"]), rule=fields.get("rule", "own"))
            for name, value in fields.items():
                attr = "_" + name if name == "single_var" else name
                if not hasattr(moments, attr):
                    raise ValueError(f"the file's scaling moments hold an unknown entry {name!r}")
                setattr(moments, attr, value)
            est._scaling_moments = moments
        if "recent_rows" in node:
            (kind, value), = node["recent_rows"].items()
            value = self.value(value)
            if kind == "csr":
                data, indices, indptr, shape = value
                recent = sp.csr_matrix((data, indices, indptr), shape=tuple(shape))
            elif kind == "dense":
                recent = value
            else:
                raise ValueError(f"the file's recent rows have an unknown kind {kind!r}")
            if recent.ndim != 2 or recent.shape[1] != getattr(est, "n_features_in_", None):
                raise ValueError("the file's recent rows do not fit n_features_in_")
            est._recent_rows = recent
            est._recent_owner = est._recent_rows_owner()


    def net(self, est, node):
        from ._networks import BRANCH_BOUNDS
        from ._random import seeded_global_rng

        n_features = getattr(est, "n_features_in_", None)
        if not isinstance(n_features, int) or n_features < 1:
            raise ValueError("the file's n_features_in_ is missing or not a positive int")
        for name in ("mean_", "scale_"):
            value = getattr(est, name, None)
            if value is not None and np.shape(value) != (n_features,):
                raise ValueError(
                    f"the file's {name} has shape {np.shape(value)}, not "
                    f"({n_features},) for n_features_in_={n_features}"
                )
        saved = getattr(est, "device_", torch.device("cpu"))
        device = saved if saved.type == "cuda" and torch.cuda.is_available() else torch.device("cpu")
        with seeded_global_rng(0, device):
            net = est._build_net(n_features, node["batch_size"], device, node["split_seed"] or 0)
            net.initialize()
        net.set_params(max_epochs=node["max_epochs"], lr=node["lr"])
        prefix = node["prefix"]
        state = {name: self.tensor(f"{prefix}module.{name}") for name in node["module_state"]}
        expected = net.module_.state_dict()
        for name in set(expected) - set(state):
            # Written before a VAE bounded its branches' inputs: no bound
            # (the network's default ones), as that fit had.
            if name.rsplit(".", 1)[-1] in BRANCH_BOUNDS:
                state[name] = expected[name]
        if set(state) != set(expected):
            raise ValueError(
                "the file's network does not match the network its parameters "
                f"describe: missing {sorted(set(expected) - set(state))}, "
                f"unexpected {sorted(set(state) - set(expected))}"
            )
        for name, t in expected.items():
            if state[name].shape != t.shape or state[name].dtype != t.dtype:
                raise ValueError(
                    f"the file's {name} has shape {tuple(state[name].shape)} and "
                    f"dtype {state[name].dtype}; the network expects "
                    f"{tuple(t.shape)}, {t.dtype}"
                )
        net.module_.load_state_dict(state)
        optimizer_state = {}
        for index, names in node["optimizer_states"].items():
            optimizer_state[int(index)] = {
                name: self.tensor(f"{prefix}optimizer.{index}.{name}").clone()
                for name in names
            }
        try:
            net.optimizer_.load_state_dict(
                {"state": optimizer_state, "param_groups": node["optimizer_groups"]}
            )
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ValueError(f"the file's optimizer state does not fit the network: {exc}") from None
        for name, value in node["criterion"].items():
            if hasattr(net.criterion_, name):
                setattr(net.criterion_, name, value)
        from skorch.history import History

        net.history = History(node["history"])
        net.initial_loss_ = node["initial_loss"]
        est.net_ = net
        est.device_ = device
        est._fitted_tensors_to(device)


def _same_value(a, b):
    """Whether two parameter values are the same (arrays: equal contents)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        return bool(np.array_equal(a, b)) if isinstance(a, np.ndarray) else bool(a == b)
    except (TypeError, ValueError):
        return False


def _named_types(node):
    """Yield every class or function name (``__type__``) in a JSON node."""
    if isinstance(node, dict):
        if isinstance(node.get("__type__"), str):
            yield node["__type__"]
        for value in node.values():
            yield from _named_types(value)
    elif isinstance(node, list):
        for value in node:
            yield from _named_types(value)


def load(path, *, trusted=None):
    """Load an estimator saved with :meth:`~AutoencoderTransformer.save`.

    Runs no code from the file: it reads safetensors tensors and JSON, and
    builds only this package's estimator classes. The result predicts,
    transforms and scores exactly as the saved estimator did, and can keep
    training with ``warm_start=True`` (Adam's state is restored). Tensors are
    loaded onto the saved device when it is a CUDA device that is available,
    else onto the CPU (``device_`` tells which).

    Parameters
    ----------
    path : str or path-like
        A file written by ``save``.

    trusted : list of classes or callables, default=None
        Custom network classes (the ``encoder`` and ``decoder`` parameters)
        and optimizer classes other than ``torch.optim``'s (the
        ``optimizer`` parameter) that the file may name. A class the file names but ``trusted`` does
        not hold is refused: loading never imports code.

    Returns
    -------
    estimator : AutoencoderTransformer, VAETransformer or AEOutlierDetector

    Raises
    ------
    ValueError
        If the file is not a sklearn_ae file, was written by a newer format
        version, fails its checksum (damaged or edited), or does not match
        the network its parameters describe.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import sklearn_ae
    >>> X = np.random.RandomState(0).standard_normal((50, 4))
    >>> ae = sklearn_ae.AutoencoderTransformer(max_iter=2, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "ae.safetensors")
    >>> ae.save(path)
    >>> loaded = sklearn_ae.load(path)
    >>> bool(np.array_equal(loaded.transform(X), ae.transform(X)))
    True
    """
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "load reads a file, not a folder", path)
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not a file saved by sklearn_ae")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise ValueError(
            f"{path} has format version {metadata.get('format_version')!r}; this "
            f"sklearn_ae reads version {FORMAT_VERSION}"
        )
    header = metadata.get("document", "")
    if metadata.get("sha256") != _checksum(header, tensors):
        raise ValueError(
            f"{path} fails its checksum: it was damaged or edited after saving"
        )
    try:
        document = json.loads(header)
        node = document["estimator"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} holds a malformed description: {exc}") from None
    reader = _Reader(tensors, list(trusted or []))
    untrusted = sorted(set(_named_types(node)) - set(reader.trusted))
    if untrusted:
        names = ", ".join(name.split(":")[-1] for name in untrusted)
        raise ValueError(
            f"{path} names classes or functions (custom networks, noise "
            f"functions, optimizers) that load "
            f"does not know: {', '.join(untrusted)}. Loading never imports "
            f"code: pass them as load(path, trusted=[{names}]) if you trust them."
        )
    try:
        estimator = reader.estimator(node)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} holds a malformed description: {exc!r}") from None
    unused = set(tensors) - reader.used
    if unused:
        raise ValueError(f"{path} holds tensors no part of the estimator uses: {sorted(unused)}")
    return estimator


__all__ = ["FORMAT_VERSION", "load", "save"]
