"""Issue 12, item 11: ``save``/``load``, a format that runs no code on load."""

import json
import pickle
import warnings

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from skorch.callbacks import Callback
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import sklearn_ae
from sklearn_ae import AEOutlierDetector, AutoencoderTransformer, VAETransformer

FAST = dict(max_iter=2, random_state=0, device="cpu")


def make_X(n_samples=60, n_features=8, seed=0):
    rng = np.random.RandomState(seed)
    return np.tanh(rng.randn(n_samples, 2) @ rng.randn(2, n_features)) + 0.1 * rng.randn(
        n_samples, n_features
    )


class MyEncoder(torch.nn.Module):
    def __init__(self, n_features, n_components, width=6):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_features, width), torch.nn.ReLU(), torch.nn.Linear(width, n_components)
        )

    def forward(self, x):
        return self.net(x)


class MyDecoder(MyEncoder):
    def __init__(self, n_features, n_components, width=6):
        super().__init__(n_components, n_features, width)


ESTIMATORS = {
    "ae": AutoencoderTransformer(**FAST),
    "ae-bn-es": AutoencoderTransformer(batch_norm=True, early_stopping=True, dropout=0.1, **FAST),
    "ae-variants": AutoencoderTransformer(
        noise="mask", noise_level=0.2, tied_weights=True, sparsity="kl",
        layerwise_pretraining=True, pretraining_max_iter=1, **FAST,
    ),
    "ae-bce": AutoencoderTransformer(loss="bce", sparsity="l1", **FAST),
    "conv": AutoencoderTransformer(input_shape=(2, 2, 2), hidden_layer_sizes=(4,),
                                   batch_norm=True, **FAST),
    "lstm": AutoencoderTransformer(input_shape=(4, 2), hidden_layer_sizes=(4, 3), **FAST),
    "custom": AutoencoderTransformer(encoder=MyEncoder, decoder=MyDecoder, encoder__width=5,
                                     **FAST),
    "vae": VAETransformer(kl_warmup=2, n_importance_samples=3, **FAST),
    "vae-bernoulli": VAETransformer(likelihood="bernoulli", **FAST),
    "od": AEOutlierDetector(n_components=4, **FAST),
    "od-robust": AEOutlierDetector(n_components=4, scaling="robust", contamination=0.1,
                                   max_samples=40, **FAST),
    "od-vae": AEOutlierDetector(backbone="vae", n_components=2, **FAST),
    "od-estimator": AEOutlierDetector(
        backbone=AutoencoderTransformer(n_components=2, **FAST), **FAST
    ),
}
METHODS = ["transform", "inverse_transform", "score_samples", "decision_function", "predict",
           "score"]


def outputs(estimator, X):
    results = {}
    for name in METHODS:
        if hasattr(estimator, name):
            arg = estimator.transform(X) if name == "inverse_transform" else X
            results[name] = getattr(estimator, name)(arg)
    return results


def data_for(key):
    X = make_X()
    if key in ("ae-bce", "vae-bernoulli"):
        X = 1 / (1 + np.exp(-X))
    return X


def save_load(estimator, tmp_path, **load_options):
    path = tmp_path / "model.safetensors"
    estimator.save(path)
    return sklearn_ae.load(path, **load_options)


@pytest.mark.parametrize("key", ESTIMATORS)
def test_round_trip_is_exact(key, tmp_path):
    X = data_for(key)
    estimator = ESTIMATORS[key].fit(X)
    trusted = [MyEncoder, MyDecoder] if key == "custom" else None
    loaded = save_load(estimator, tmp_path, trusted=trusted)
    assert type(loaded) is type(estimator)
    assert loaded.get_params().keys() == estimator.get_params().keys()
    for name, value in estimator.get_params(deep=False).items():
        if not hasattr(value, "get_params"):
            assert loaded.get_params(deep=False)[name] == value, name
    expected, got = outputs(estimator, X), outputs(loaded, X)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
        assert np.asarray(got[name]).dtype == np.asarray(expected[name]).dtype
    # float32 input too
    X32 = X.astype(np.float32)
    for name, value in outputs(estimator, X32).items():
        np.testing.assert_array_equal(outputs(loaded, X32)[name], value, err_msg=name)
    for attr in ("n_features_in_", "n_iter_", "loss_curve_", "offset_", "validation_scores_"):
        if hasattr(estimator, attr):
            assert getattr(loaded, attr) == getattr(estimator, attr), attr
    if hasattr(estimator, "net_"):
        assert list(loaded.net_.history[:, "train_loss"]) == list(
            estimator.net_.history[:, "train_loss"]
        )


def test_warm_start_after_load_continues_as_the_original(tmp_path):
    X = make_X()
    original = AutoencoderTransformer(dropout=0.1, **FAST).fit(X)
    loaded = save_load(original, tmp_path)
    for est in (original, loaded):
        est.set_params(warm_start=True).fit(X)
    assert loaded.n_iter_ == original.n_iter_ == 4
    np.testing.assert_array_equal(loaded.transform(X), original.transform(X))


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_partial_fit_after_load_continues_the_running_scaling(Estimator, tmp_path):
    # A feature constant in the first chunk and varying in the second: the
    # running moments, not the floored scale_, must carry over to the file
    # (rebuilt from scale_, the continued scale was 0.92 instead of 0.59).
    rng = np.random.RandomState(0)
    X = rng.standard_normal((200, 5))
    X[:, 3] = 5.0
    X[120:, 3] += rng.standard_normal(80)
    original = Estimator(n_components=2, hidden_layer_sizes=(8,), **FAST).partial_fit(X[:100])
    loaded = save_load(original, tmp_path)
    for est in (original, loaded):
        est.partial_fit(X[100:])
    np.testing.assert_array_equal(loaded.scale_, original.scale_)
    np.testing.assert_array_equal(loaded.transform(X), original.transform(X))


@pytest.mark.parametrize("sparse", [False, True])
def test_detector_partial_fit_after_load_keeps_its_recent_rows(sparse, tmp_path):
    # offset_ and the score's scales come from the recent rows of every
    # partial_fit; after a load they must not come from the new chunk alone.
    import scipy.sparse as sp

    X = make_X(n_samples=160)
    X = sp.csr_matrix(np.where(np.abs(X) < 0.3, 0.0, X)) if sparse else X
    original = AEOutlierDetector(n_components=3, **FAST).partial_fit(X[:100])
    loaded = save_load(original, tmp_path)
    for est in (original, loaded):
        est.partial_fit(X[100:])
    assert loaded.offset_ == original.offset_
    np.testing.assert_array_equal(loaded.score_samples(X), original.score_samples(X))


def test_feature_names_and_unfitted_estimators_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(make_X(), columns=[f"feature {i}" for i in range(8)])
    ae = AutoencoderTransformer(**FAST).fit(X)
    loaded = save_load(ae, tmp_path)
    np.testing.assert_array_equal(loaded.feature_names_in_, ae.feature_names_in_)
    assert loaded.feature_names_in_.dtype == ae.feature_names_in_.dtype
    np.testing.assert_array_equal(loaded.get_feature_names_out(), ae.get_feature_names_out())
    unfitted = save_load(VAETransformer(n_components=3, hidden_layer_sizes=(7, 5)), tmp_path)
    assert unfitted.get_params()["hidden_layer_sizes"] == (7, 5)
    with pytest.raises(NotFittedError):
        unfitted.transform(X)


def test_custom_networks_need_trusted_classes(tmp_path):
    X = make_X()
    ae = ESTIMATORS["custom"].fit(X)
    path = tmp_path / "custom.safetensors"
    ae.save(path)
    with pytest.raises(ValueError, match=r"trusted=\[MyDecoder, MyEncoder\]"):
        sklearn_ae.load(path)
    with pytest.raises(ValueError, match=r"trusted=\[MyDecoder\]"):
        sklearn_ae.load(path, trusted=[MyEncoder])
    # A different class of the same name is not the trusted one.
    impostor = type("MyDecoder", (MyDecoder,), {"__module__": "elsewhere"})
    with pytest.raises(ValueError, match="MyDecoder"):
        sklearn_ae.load(path, trusted=[MyEncoder, impostor])
    loaded = sklearn_ae.load(path, trusted=[MyEncoder, MyDecoder])
    np.testing.assert_array_equal(loaded.transform(X), ae.transform(X))


def test_what_cannot_be_saved_is_refused_or_dropped_with_a_warning(tmp_path):
    X = make_X()
    instance = AutoencoderTransformer(
        encoder=MyEncoder(8, 2), decoder=MyDecoder(8, 2), **FAST
    ).fit(X)
    with pytest.raises(ValueError, match="module instance"):
        instance.save(tmp_path / "a.safetensors")
    rng = AutoencoderTransformer(max_iter=1, random_state=np.random.RandomState(0))
    with pytest.raises(ValueError, match="random_state"):
        rng.save(tmp_path / "b.safetensors")

    class Noop(Callback):
        pass

    with_callbacks = AutoencoderTransformer(callbacks=[("noop", Noop())], **FAST).fit(X)
    with pytest.warns(UserWarning, match="callbacks are not saved"):
        with_callbacks.save(tmp_path / "c.safetensors")
    loaded = sklearn_ae.load(tmp_path / "c.safetensors")
    assert loaded.callbacks is None
    np.testing.assert_array_equal(loaded.transform(X), with_callbacks.transform(X))


def rewrite(path, edit_tensors=None, edit_metadata=None):
    """Rewrite a saved file with edited tensors or metadata (a tampering)."""
    with safe_open(str(path), framework="pt", device="cpu") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if edit_tensors:
        edit_tensors(tensors)
    if edit_metadata:
        edit_metadata(metadata)
    save_file(tensors, str(path), metadata=metadata)


def test_tampered_or_mismatched_files_are_refused(tmp_path):
    X = make_X()
    ae = AutoencoderTransformer(**FAST).fit(X)
    path = tmp_path / "ae.safetensors"

    def fresh():
        ae.save(path)
        return path

    def scale_weight(tensors):
        name = next(k for k in tensors if "encoder" in k and k.endswith("weight"))
        tensors[name] = tensors[name] * 2

    rewrite(fresh(), edit_tensors=scale_weight)
    with pytest.raises(ValueError, match="checksum"):
        sklearn_ae.load(path)

    def change_param(metadata):
        metadata["document"] = metadata["document"].replace('"n_components": 2', '"n_components": 3')

    rewrite(fresh(), edit_metadata=change_param)
    with pytest.raises(ValueError, match="checksum"):
        sklearn_ae.load(path)

    # A consistent but mismatched file (checksum recomputed): the shapes are checked.
    from sklearn_ae._persistence import _checksum

    def mismatched(metadata):
        change_param(metadata)

    rewrite(fresh(), edit_metadata=mismatched)
    with safe_open(str(path), framework="pt", device="cpu") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    metadata["sha256"] = _checksum(metadata["document"], tensors)
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ValueError, match="shape"):
        sklearn_ae.load(path)

    rewrite(fresh(), edit_metadata=lambda m: m.update(format_version="99"))
    with pytest.raises(ValueError, match="version"):
        sklearn_ae.load(path)

    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="safetensors"):
        sklearn_ae.load(path)
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="not a file saved by sklearn_ae"):
        sklearn_ae.load(path)


@pytest.mark.parametrize(
    "edit, match",
    [
        # each was accepted (a method shadowed, a parameter kept) or gave
        # torch's own message
        (lambda e: e["fitted"].update(transform=1), "unexpected fitted attribute 'transform'"),
        (lambda e: e["fitted"].update(device_={"__device__": "nonsense"}), "invalid device"),
        (lambda e: e["params"].update(bogus=1), r"\['bogus'\] are not parameters"),
        (lambda e: e["params"].update(n_components="abc"), "'n_components' parameter"),
    ],
)
def test_edited_files_with_a_recomputed_checksum_are_refused_by_name(edit, match, tmp_path):
    from sklearn_ae._persistence import _checksum

    path = tmp_path / "ae.safetensors"
    AutoencoderTransformer(**FAST).fit(make_X()).save(path)

    def edited(metadata):
        document = json.loads(metadata["document"])
        edit(document["estimator"])
        metadata["document"] = json.dumps(document, sort_keys=True)

    rewrite(path, edit_metadata=edited)
    with safe_open(str(path), framework="pt", device="cpu") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    metadata["sha256"] = _checksum(metadata["document"], tensors)
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ValueError, match=match):
        sklearn_ae.load(path)


def test_save_and_load_name_a_folder_or_a_missing_folder(tmp_path):
    # safetensors raised its own SafetensorError ("Error while serializing:
    # I/O error ...") on save, and load called a folder "not a readable
    # safetensors file: No such device".
    ae = AutoencoderTransformer(**FAST).fit(make_X())
    with pytest.raises(IsADirectoryError, match="save writes a file"):
        ae.save(tmp_path)
    with pytest.raises(FileNotFoundError, match="no folder to save the file in"):
        ae.save(tmp_path / "missing" / "ae.safetensors")
    with pytest.raises(IsADirectoryError, match="load reads a file"):
        sklearn_ae.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        sklearn_ae.load(tmp_path / "missing.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_load_never_unpickles(tmp_path, monkeypatch):
    X = make_X()
    od = AEOutlierDetector(backbone="vae", n_components=2, **FAST).fit(X)
    od.save(tmp_path / "od.safetensors")

    def forbidden(*args, **kwargs):
        raise AssertionError("load unpickled something")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    loaded = sklearn_ae.load(tmp_path / "od.safetensors")
    np.testing.assert_array_equal(loaded.predict(X), od.predict(X))
    # The description is plain JSON.
    with safe_open(str(tmp_path / "od.safetensors"), framework="pt", device="cpu") as f:
        document = json.loads(f.metadata()["document"])
    assert document["estimator"]["class"] == "AEOutlierDetector"


def test_a_cuda_trained_model_loads_on_the_cpu(tmp_path, monkeypatch):
    """The file records where the model was trained; tensors always load on
    the CPU first, and stay there when CUDA is not available. CUDA is faked
    here by recording device_ as 'cuda:0'."""
    X = make_X()
    ae = AutoencoderTransformer(**FAST).fit(X)
    expected = ae.transform(X)
    ae.device_ = torch.device("cuda:0")
    ae.set_params(device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ae.save(tmp_path / "gpu.safetensors")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = sklearn_ae.load(tmp_path / "gpu.safetensors")
    assert loaded.device_ == torch.device("cpu")
    assert loaded.net_.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in loaded.module_.parameters())
    assert loaded.get_params()["device"] == "cuda"
    np.testing.assert_array_equal(loaded.transform(X), expected)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA_ESTIMATORS = {
    "ae": AutoencoderTransformer(n_components=3, **{**FAST, "device": "cuda"}),
    "vae": VAETransformer(n_components=3, **{**FAST, "device": "cuda"}),
    "od": AEOutlierDetector(n_components=3, **{**FAST, "device": "cuda"}),
}


def _outputs(est, X):
    if isinstance(est, AEOutlierDetector):
        return [est.score_samples(X), est.predict(X)]
    if isinstance(est, VAETransformer):
        return [est.transform(X), est.score_samples(X)]
    return [est.transform(X), est.inverse_transform(est.transform(X))]


def _devices(est):
    module = est.module_
    return {t.device.type for t in [*module.parameters(), *module.buffers()]}


@CUDA
@pytest.mark.parametrize("name", CUDA_ESTIMATORS)
def test_pickling_a_cuda_estimator_leaves_it_on_the_gpu(name):
    # Pickling once moved a live GPU detector's tensors to the CPU (its
    # __getstate__ edited the instance's own __dict__), and its next
    # score_samples failed with "Expected all tensors to be on the same device".
    X = make_X()
    est = clone(CUDA_ESTIMATORS[name]).fit(X)
    expected = _outputs(est, X)
    restored = pickle.loads(pickle.dumps(est))
    assert _devices(est) == {"cuda"} and _devices(restored) == {"cuda"}
    for before, after, again in zip(expected, _outputs(est, X), _outputs(restored, X)):
        np.testing.assert_array_equal(after, before)
        np.testing.assert_array_equal(again, before)


@CUDA
@pytest.mark.parametrize("name", CUDA_ESTIMATORS)
def test_safe_format_loads_a_cuda_model_onto_the_gpu(tmp_path, name):
    # Tensors are read onto the CPU, then moved to the saved CUDA device.
    X = make_X()
    est = clone(CUDA_ESTIMATORS[name]).fit(X)
    est.save(tmp_path / "gpu.safetensors")
    loaded = sklearn_ae.load(tmp_path / "gpu.safetensors")
    assert loaded.device_.type == "cuda" and _devices(loaded) == {"cuda"}
    for before, after in zip(_outputs(est, X), _outputs(loaded, X)):
        np.testing.assert_array_equal(after, before)
    # Adam's restored state is on the GPU too: training goes on there.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.set_params(warm_start=True, max_iter=1).fit(X)
    assert _devices(loaded) == {"cuda"}
    assert all(np.all(np.isfinite(out)) for out in _outputs(loaded, X))


def test_vae_linear_start_model_round_trips(tmp_path):
    # The VAE keeps the PPCA or FactorAnalysis fit it started from; the safe
    # format rebuilds it from its parameters and fitted arrays.
    X = make_X()
    vae = VAETransformer(n_components=2, **FAST).fit(X)
    assert vae.linear_model_ is not None
    vae.save(tmp_path / "vae.safetensors")
    loaded = sklearn_ae.load(tmp_path / "vae.safetensors")
    assert type(loaded.linear_model_) is type(vae.linear_model_)
    np.testing.assert_array_equal(loaded.linear_model_.score_samples(X), vae.linear_model_.score_samples(X))


def _without_isolation(document):
    """A saved detector's JSON as the format held it before isolation_weight."""
    doc = json.loads(document)
    node = doc["estimator"]
    del node["params"]["isolation_weight"]
    del node["fitted"]["isolation_trees_"]
    return json.dumps(doc)


def test_a_detector_saved_before_isolation_weight_loads_as_it_was(tmp_path):
    X = make_X()
    old = AEOutlierDetector(n_components=4, isolation_weight=0, **FAST).fit(X)
    path = tmp_path / "od.safetensors"
    old.save(path)
    from sklearn_ae._persistence import _checksum

    # The file as an earlier version wrote it: no isolation parameter or forest.
    with safe_open(str(path), framework="pt", device="cpu") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    metadata["document"] = _without_isolation(metadata["document"])
    metadata["sha256"] = _checksum(metadata["document"], tensors)
    save_file(tensors, str(path), metadata=metadata)
    loaded = sklearn_ae.load(path)
    assert loaded.isolation_weight == 0 and loaded.isolation_trees_ is None
    np.testing.assert_array_equal(loaded.score_samples(X), old.score_samples(X))


def test_vae_branch_bounds_round_trip(tmp_path):
    # The bounds only act beyond the fitted rows: compare a far row's score.
    X = make_X()
    vae = VAETransformer(n_components=2, **FAST).fit(X)
    vae.save(tmp_path / "vae.safetensors")
    loaded = sklearn_ae.load(tmp_path / "vae.safetensors")
    for name in ("input_low", "input_high", "latent_low", "latent_high"):
        assert torch.equal(getattr(loaded.net_.module_, name), getattr(vae.net_.module_, name))
    assert loaded.net_.module_.bounds_set
    far = X[:2] * 50
    np.testing.assert_array_equal(loaded.score_samples(far), vae.score_samples(far))


def test_a_vae_saved_before_its_branch_bounds_loads_without_them(tmp_path):
    X = make_X()
    vae = VAETransformer(n_components=2, **FAST).fit(X)
    path = tmp_path / "vae.safetensors"
    vae.save(path)
    from sklearn_ae._persistence import _checksum

    # The file as an earlier version wrote it: no bound buffers.
    bounds = ("input_low", "input_high", "latent_low", "latent_high")
    with safe_open(str(path), framework="pt", device="cpu") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys() if not k.endswith(bounds)}
    doc = json.loads(metadata["document"])

    def drop(node):
        if isinstance(node, dict):
            if "module_state" in node:
                node["module_state"] = [n for n in node["module_state"] if not n.endswith(bounds)]
            for value in node.values():
                drop(value)
        elif isinstance(node, list):
            for value in node:
                drop(value)

    drop(doc)
    metadata["document"] = json.dumps(doc)
    metadata["sha256"] = _checksum(metadata["document"], tensors)
    save_file(tensors, str(path), metadata=metadata)
    loaded = sklearn_ae.load(path)
    largest = torch.finfo(torch.float32).max
    assert (loaded.net_.module_.input_high == largest).all()
    # As the earlier fit scored: without bounds (no row of X is beyond them).
    np.testing.assert_allclose(loaded.score_samples(X), vae.score_samples(X), rtol=1e-6)


def test_a_detector_pickled_before_isolation_weight_unpickles_as_it_was():
    X = make_X()
    old = AEOutlierDetector(n_components=4, isolation_weight=0, **FAST).fit(X)
    state = dict(old.__getstate__())  # a copy: it may be old.__dict__ itself
    del state["isolation_weight"], state["isolation_trees_"]
    restored = AEOutlierDetector.__new__(AEOutlierDetector)
    restored.__setstate__(pickle.loads(pickle.dumps(state)))
    assert restored.get_params()["isolation_weight"] == 0
    np.testing.assert_array_equal(restored.score_samples(X), old.score_samples(X))


def test_a_lambda_cannot_be_saved_by_name(tmp_path):
    # It was saved, and load then suggested trusted=[<lambda>], which is no
    # Python; another lambda (or closure) of the same name would have passed.
    ae = AutoencoderTransformer(noise=lambda batch, generator: batch, **FAST).fit(make_X())
    with pytest.raises(ValueError, match=r"noise=.*<lambda> is a lambda or a function defined inside"):
        ae.save(tmp_path / "ae.safetensors")


@pytest.mark.parametrize(
    "estimator",
    [
        AutoencoderTransformer(n_components=2, **FAST),
        VAETransformer(n_components=2, **FAST),
        AEOutlierDetector(n_components=2, member_combination="standardized", dropout_passes=2,
                          latent_weight=1.0, **FAST),
    ],
    ids=["ae", "vae", "detector"],
)
def test_pickles_hold_no_tensor_outside_what_is_mapped_to_the_cpu(estimator):
    # skorch saves the net's modules apart and maps them to the CPU where
    # CUDA is missing; any other tensor pickled on a CUDA device fails to
    # unpickle there (torch: "Attempting to deserialize object on a CUDA
    # device"). The net's module parameter (the very module_ instance) was
    # one, so a GPU-trained model could not be unpickled on a CPU-only
    # machine; the detector's own fitted tensors are others.
    import io

    class Pickler(pickle.Pickler):
        found = []

        def reducer_override(self, obj):
            if isinstance(obj, torch.Tensor) and obj.device.type != "cpu":
                self.found.append(tuple(obj.shape))
            if isinstance(obj, torch.nn.Module) and any(
                True for _ in (*obj.parameters(), *obj.buffers())
            ):
                self.found.append(type(obj).__name__)
            return NotImplemented

    fitted = clone(estimator).fit(make_X(n_samples=120))
    pickler = Pickler(io.BytesIO())
    pickler.dump(fitted)
    assert pickler.found == []
    restored = pickle.loads(pickle.dumps(fitted))
    net = restored.net_
    assert net.module is net.module_  # as fitted
    np.testing.assert_array_equal(restored.score_samples(make_X()), fitted.score_samples(make_X()))


def test_pickling_leaves_the_live_estimators_tensors_where_they_are(monkeypatch):
    # On a GPU, pickling moved the detector's own fitted tensors (dropout
    # masks...) of the live estimator to the CPU (object.__getstate__ gives
    # the instance's own __dict__), and its next score_samples failed with
    # torch's "Expected all tensors to be on the same device". Here every
    # tensor "moves" (a copy) to show the same thing without a GPU.
    import sklearn_ae._base as base

    det = AEOutlierDetector(n_components=2, dropout_passes=2, **FAST).fit(make_X(n_samples=120))
    before = dict(vars(det))
    monkeypatch.setattr(
        base, "_tensors_to",
        lambda value, device: (
            [v.clone() for v in value]
            if isinstance(value, list) and value and isinstance(value[0], torch.Tensor)
            else value
        ),
    )
    pickle.dumps(det)
    assert all(vars(det)[k] is v for k, v in before.items())
