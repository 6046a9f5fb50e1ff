"""Every stock skorch callback on every estimator (issue 13).

Each test passes one callback from ``skorch.callbacks`` through
``callbacks=[...]`` to each of the three estimators and checks its effect: a
file written and loadable, a learning rate changed, a line printed, a score
recorded, weights frozen. Data are tiny and fits 3 epochs long.
"""

import copy
import json
import os
import warnings
from functools import partial

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import make_scorer, r2_score
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import (
    BatchScoring,
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochScoring,
    Freezer,
    GradientNormClipping,
    Initializer,
    LoadInitState,
    LRScheduler,
    ParamMapper,
    PassthroughScoring,
    PrintLog,
    ProgressBar,
    TensorBoard,
    TrainEndCheckpoint,
    Unfreezer,
    WarmRestartLR,
)

from sklearn_ae import AEOutlierDetector, AutoencoderTransformer, VAETransformer
from sklearn_ae._callbacks import fresh_callback

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

N_SAMPLES, N_FEATURES, BATCH_SIZE, N_EPOCHS = 64, 5, 16, 3
# 48 training rows, 16 validation rows: 3 + 1 batches an epoch.
N_TRAIN_BATCHES, N_VALID_BATCHES = 3, 1
COMMON = dict(
    n_components=2,
    hidden_layer_sizes=(8,),
    max_iter=N_EPOCHS,
    batch_size=BATCH_SIZE,
    early_stopping=True,
    validation_fraction=0.25,
    n_iter_no_change=50,
    random_state=0,
    device="cpu",
)
ESTIMATORS = {
    "ae": partial(AutoencoderTransformer, **COMMON),
    "vae": partial(VAETransformer, **COMMON),
    "outlier": partial(
        AEOutlierDetector, n_estimators=2, dropout=0.0, batch_norm=False,
        max_samples=None, **COMMON,
    ),
}


def first_weight(make, X):
    """The name of the first weight of the estimator's network (the networks
    differ: linear paths beside branches, parallel members...)."""
    module = make(max_iter=1).fit(X).module_
    return next(name for name, _ in module.named_parameters() if name.endswith("weight"))


@pytest.fixture(params=sorted(ESTIMATORS))
def make(request):
    return ESTIMATORS[request.param]


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).randn(N_SAMPLES, N_FEATURES)


def weights(est):
    return {k: v.detach().clone() for k, v in est.module_.state_dict().items()}


def initial_weights(make, X):
    """The network's weights before its first step, for the same seed,
    without early stopping as the tests that compare with them (the VAE
    chooses its linear start on held-out rows, which early stopping draws
    differently)."""
    est = make(max_iter=1, learning_rate=1e-12, early_stopping=False).fit(X)
    return weights(est)


class Spy(Callback):
    """Records the arguments of the batch hooks."""

    def initialize(self):
        self.calls_ = []
        return self

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        self.calls_.append(("begin", training, len(batch[0])))

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        row = net.history[-1, "batches", -1]
        self.calls_.append(
            ("end", training, len(batch[0]), float(kwargs["loss"].detach()),
             kwargs["y_pred"] is not None, row)
        )


# ----------------------------------------------------------- the contract
def test_history_rows_as_skorch(make, X):
    est = make().fit(X)
    history = est.net_.history
    assert len(history) == N_EPOCHS
    for row in history:
        assert {"train_loss", "train_loss_best", "valid_loss", "valid_loss_best",
                "dur", "epoch"} <= set(row)
        batches = row["batches"]
        train = [b for b in batches if "train_loss" in b]
        valid = [b for b in batches if "valid_loss" in b]
        assert len(train) == N_TRAIN_BATCHES and len(valid) == N_VALID_BATCHES
        assert sum(b["train_batch_size"] for b in train) == 48
        assert sum(b["valid_batch_size"] for b in valid) == 16
        # The epoch's loss is the batch losses averaged by batch size.
        np.testing.assert_allclose(
            row["train_loss"],
            np.average([b["train_loss"] for b in train],
                       weights=[b["train_batch_size"] for b in train]),
            rtol=1e-6,
        )
    assert history[0, "train_loss_best"] is True


def test_batch_hooks_get_skorch_arguments(make, X):
    """on_batch_begin/on_batch_end get batch and training; on_batch_end the
    step's loss and y_pred, after the batch's history row is written."""
    spy = Spy()
    est = make(callbacks=[("spy", spy)]).fit(X)
    calls = est.net_.callbacks_[-1][1].calls_
    assert len(calls) == 2 * N_EPOCHS * (N_TRAIN_BATCHES + N_VALID_BATCHES)
    ends = [c for c in calls if c[0] == "end"]
    assert [c[1] for c in ends[:4]] == [True, True, True, False]
    for _, training, size, loss, has_pred, row in ends:
        prefix = "train" if training else "valid"
        assert row[prefix + "_loss"] == pytest.approx(loss)
        assert row[prefix + "_batch_size"] == size
        assert has_pred
    assert not hasattr(spy, "calls_")  # the user's object was not initialized


def test_same_training_with_and_without_batch_hooks(make, X):
    """The fast path (no per-batch hook) and skorch's path train alike."""
    plain = make().fit(X)
    hooked = make(callbacks=[Spy()]).fit(X)
    np.testing.assert_allclose(plain.loss_curve_, hooked.loss_curve_, rtol=1e-5)


def outputs(est, X):
    """What the network computes for X: codes, or the detector's
    reconstruction errors (its scores also depend on calibration and an
    isolation forest fitted outside the net, which load_params does not
    touch)."""
    if hasattr(est, "transform"):
        return est.transform(X)
    return est._parts(X)[:, 0]


def test_save_params_load_params(make, X, tmp_path):
    est = make().fit(X)
    est.net_.save_params(
        f_params=tmp_path / "p.pt", f_optimizer=tmp_path / "o.pt",
        f_history=tmp_path / "h.json",
    )
    other = make(max_iter=1, random_state=1).fit(X)
    other.net_.load_params(
        f_params=tmp_path / "p.pt", f_optimizer=tmp_path / "o.pt",
        f_history=tmp_path / "h.json",
    )
    for name, value in weights(est).items():
        torch.testing.assert_close(other.module_.state_dict()[name], value)
    assert len(other.net_.history) == N_EPOCHS
    np.testing.assert_allclose(outputs(other, X), outputs(est, X), rtol=1e-5)


def test_initialize_starts_afresh(make, X):
    est = make().fit(X)
    net = est.net_
    assert net.initial_loss_ is not None
    net.initialize()
    assert len(net.history) == 0 and net.initial_loss_ is None


def test_user_callback_is_not_mutated_and_clone_works(make, X):
    cb = EpochScoring("r2", name="r2")
    est = make(callbacks=[cb]).fit(X)
    assert vars(cb) == vars(EpochScoring("r2", name="r2"))
    assert clone(est).callbacks[0] is not cb


# ---------------------------------------------------- one stock callback each
def test_checkpoint(make, X, tmp_path):
    cp = Checkpoint(dirname=str(tmp_path), monitor="valid_loss_best")
    est = make(callbacks=[cp]).fit(X)
    assert {"params.pt", "optimizer.pt", "history.json"} <= set(os.listdir(tmp_path))
    assert est.net_.history[0, "event_cp"] is True  # the first epoch is the best yet
    saved = torch.load(tmp_path / "params.pt", weights_only=True)
    assert set(saved) == set(est.module_.state_dict())
    best = int(np.argmin(est.net_.history[:, "valid_loss"]))
    with open(tmp_path / "history.json") as f:
        assert len(json.load(f)) == best + 1
    # Loadable through the user's own (never initialized) object.
    est.net_.load_params(checkpoint=cp)
    for name, value in saved.items():
        torch.testing.assert_close(est.module_.state_dict()[name], value)


def test_train_end_checkpoint(make, X, tmp_path):
    cp = TrainEndCheckpoint(dirname=str(tmp_path))
    est = make(callbacks=[cp]).fit(X)
    saved = torch.load(tmp_path / "train_end_params.pt", weights_only=True)
    for name, value in weights(est).items():
        torch.testing.assert_close(saved[name], value)


def test_load_init_state(make, X, tmp_path):
    # Every epoch; no early stopping, whose restore-best would load an
    # earlier epoch's weights after the last checkpoint.
    cp = Checkpoint(dirname=str(tmp_path), monitor=None)
    first = make(early_stopping=False, callbacks=[cp]).fit(X)
    # A second fit with another seed starts from the checkpoint: at a
    # learning rate that barely moves the weights, it ends where the first did
    # (weights only: the saved optimizer state would bring back its lr).
    cp2 = Checkpoint(dirname=str(tmp_path), monitor=None, f_optimizer=None)
    second = make(
        random_state=1, max_iter=1, learning_rate=1e-12,
        callbacks=[cp2, LoadInitState(cp2)],
    ).fit(X)
    # Parameters (the VAE's buffers follow the batches: a running variance).
    loaded = dict(second.module_.named_parameters())
    for name, value in first.module_.named_parameters():
        torch.testing.assert_close(loaded[name], value)


def test_tensorboard(make, X, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    make(callbacks=[TensorBoard(writer)]).fit(X)
    writer.flush()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    train = events.Scalars("Loss/train_loss")
    assert [e.step for e in train] == [1, 2, 3]  # skorch logs epochs from 1
    assert "Loss/valid_loss" in events.Tags()["scalars"]
    writer.close()


def test_progress_bar(make, X, capsys):
    est = make(callbacks=[ProgressBar()]).fit(X)
    assert "it/s" in capsys.readouterr().err
    bar = dict(est.net_.callbacks_)["ProgressBar"].pbar_  # the last epoch's
    n = N_TRAIN_BATCHES + N_VALID_BATCHES
    assert (bar.n, bar.total) == (n, n)  # the bar completed, not stuck at 0
    # The loss it shows comes from the last per-batch history row.
    assert "valid_loss=" in bar.postfix


def test_print_log(make, X, capsys):
    est = make(callbacks=[PrintLog()]).fit(X)
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:1] == ["epoch"] and {"train_loss", "valid_loss", "dur"} <= set(header)
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert len(est.net_.history) == N_EPOCHS


@pytest.mark.parametrize("on_train", [False, True])
def test_epoch_scoring_r2(make, X, on_train):
    est = make(callbacks=[EpochScoring("r2", on_train=on_train)]).fit(X)
    scores = est.net_.history[:, "r2"]
    assert len(scores) == N_EPOCHS
    assert all(np.isfinite(scores)) and all(-1.5 < s < 1 for s in scores)
    assert "r2_best" in est.net_.history[-1]


def test_epoch_scoring_r2_is_right(X):
    """The validation r2 is r2_score of the validation rows (in the units the
    network trains in, where r2 is the same) and their reconstructions,
    checked at every epoch's end (restore-best may change the net after)."""

    class R2Check(Callback):
        def on_epoch_end(self, net, dataset_valid=None, **kwargs):
            rows = dataset_valid.take(slice(None)).numpy()
            net.history.record("r2_check", r2_score(rows, net.predict(dataset_valid)))

    est = ESTIMATORS["ae"](callbacks=[EpochScoring("r2"), R2Check()]).fit(X)
    history = est.net_.history
    assert history[:, "r2"] == pytest.approx(history[:, "r2_check"], rel=1e-4)


def test_epoch_scoring_r2_on_constant_features():
    """On digits, blank pixels are constant over the validation rows: their
    r2 must not be float32 rounding noise (-1e12), as it was."""
    from sklearn.datasets import load_digits

    X = load_digits().data[:200]
    est = ESTIMATORS["ae"](callbacks=[EpochScoring("r2")]).fit(X)
    assert all(-1.5 < s < 1 for s in est.net_.history[:, "r2"])


def test_epoch_scoring_callable(make, X):
    scorer = make_scorer(r2_score, multioutput="variance_weighted")
    est = make(callbacks=[EpochScoring(scorer, name="r2vw", on_train=True)]).fit(X)
    assert all(-1.5 < s < 1 for s in est.net_.history[:, "r2vw"])


def test_batch_scoring(make, X):
    scorer = make_scorer(r2_score, multioutput="variance_weighted")
    est = make(callbacks=[BatchScoring(scorer, name="batch_r2", on_train=True)]).fit(X)
    history = est.net_.history
    per_batch = [b["batch_r2"] for b in history[-1, "batches"] if "batch_r2" in b]
    assert len(per_batch) == N_TRAIN_BATCHES
    assert np.isfinite(history[-1, "batch_r2"])


class ScoreCheck(Callback):
    """Records r2_score of the rows (in the network's units, cut as training
    cuts them) and the net's reconstructions of them: at each epoch's end on
    the training or validation set, and after each batch on the batch."""

    def __init__(self, on_train):
        self.on_train = on_train

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if training == self.on_train:
            rows = batch[1].detach().numpy()
            net.history.record_batch("r2_check", r2_score(rows, net.predict(batch[0])))

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        dataset = dataset_train if self.on_train else dataset_valid
        rows = dataset.take(slice(None)).numpy()
        net.history.record("r2_check", r2_score(rows, net.predict(dataset)))


def batch_column(history, name):
    return [b[name] for row in history for b in row["batches"] if name in b]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("on_train", [False, True])
def test_epoch_scoring_without_cache(make, X, on_train, dtype):
    """use_caching=False scores the net's reconstructions of the whole
    training or validation set against the rows themselves, in the units
    the network trains in; on the validation set, as the cached score. It
    failed with a NaN (no targets) or a VAEOutput TypeError. float32 input
    is kept as the caller's rows and standardized as batches are cut."""
    callbacks = [
        EpochScoring("r2", name="r2_uncached", on_train=on_train, use_caching=False,
                     lower_is_better=False),
        EpochScoring("r2", name="r2_cached", on_train=on_train, lower_is_better=False),
        ScoreCheck(on_train),
    ]
    est = make(callbacks=callbacks).fit(X.astype(dtype))
    history = est.net_.history
    uncached = history[:, "r2_uncached"]
    assert len(uncached) == N_EPOCHS and all(-1.5 < s < 1 for s in uncached)
    assert uncached == pytest.approx(history[:, "r2_check"], rel=1e-5)
    assert "r2_uncached_best" in history[-1]
    if not on_train:
        # (On the training set the cache holds outputs from before each step.)
        assert uncached == pytest.approx(history[:, "r2_cached"], rel=1e-5)


def test_epoch_scoring_without_cache_or_validation(make, X):
    """Without early stopping the training set is all of X."""
    est = make(early_stopping=False, callbacks=[
        EpochScoring("r2", on_train=True, use_caching=False), ScoreCheck(True),
    ]).fit(X)
    history = est.net_.history
    assert history[:, "r2"] == pytest.approx(history[:, "r2_check"], rel=1e-5)


@pytest.mark.parametrize("on_train", [False, True])
def test_batch_scoring_without_cache(make, X, on_train):
    """BatchScoring(use_caching=False) predicts each batch (a tensor of rows
    in the network's units) again; it failed with a TypeError."""
    callbacks = [
        BatchScoring("r2", name="r2_uncached", on_train=on_train, use_caching=False),
        BatchScoring("r2", name="r2_cached", on_train=on_train),
        ScoreCheck(on_train),
    ]
    est = make(callbacks=callbacks).fit(X)
    history = est.net_.history
    uncached = batch_column(history, "r2_uncached")
    n_batches = N_TRAIN_BATCHES if on_train else N_VALID_BATCHES
    assert len(uncached) == N_EPOCHS * n_batches
    assert all(np.isfinite(uncached))
    assert uncached == pytest.approx(batch_column(history, "r2_check"), rel=1e-5)
    if not on_train:
        assert uncached == pytest.approx(batch_column(history, "r2_cached"), rel=1e-5)


@pytest.mark.parametrize("kind", ["resident", "callers_float32", "host", "sparse"])
def test_tensor_data_is_a_skorch_dataset_of_its_rows(X, kind, monkeypatch):
    """What skorch's uncached scoring unpacks from a TensorData: X and y both
    the standardized rows (a view where they are kept standardized), built a
    block at a time from rows kept on the host."""
    import scipy.sparse as sp
    from skorch.utils import data_from_dataset

    import sklearn_ae._data
    from sklearn_ae._data import TensorData

    monkeypatch.setattr(sklearn_ae._data, "_BLOCK_ROWS", 10)  # 64 rows: 7 blocks
    mean, scale = X.mean(0), X.std(0)
    expected = ((X - mean) / scale).astype(np.float32)
    rows = {"resident": X, "callers_float32": X.astype(np.float32), "host": X,
            "sparse": sp.csr_matrix(X)}[kind]
    data = TensorData(rows, mean=mean, scale=scale, resident=kind != "host")
    assert data._raw == (kind == "callers_float32")
    X_test, y_test = data_from_dataset(data)
    for got in (X_test, y_test, torch.stack([data[i][1] for i in range(len(data))])):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    if kind == "resident":
        assert X_test.data_ptr() == data._rows.data_ptr()  # no copy
    assert torch.equal(data[-1][0], data[len(data) - 1][0])
    with pytest.raises(IndexError):
        data[len(data)]
    if kind == "callers_float32":
        np.testing.assert_array_equal(rows, X.astype(np.float32))  # not written to


def test_passthrough_scoring(make, X):
    class DoubleLoss(Callback):
        def on_batch_end(self, net, training, loss, **kwargs):
            if training:
                net.history.record_batch("double_loss", 2 * float(loss.detach()))

    est = make(callbacks=[
        DoubleLoss(), PassthroughScoring(name="double_loss", on_train=True)
    ]).fit(X)
    history = est.net_.history
    np.testing.assert_allclose(
        history[:, "double_loss"], 2 * np.array(history[:, "train_loss"]), rtol=1e-6
    )
    assert history[:, "double_loss_best"] == history[:, "train_loss_best"]


def test_lr_scheduler(make, X):
    sched = LRScheduler(policy=torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.1)
    est = make(learning_rate=1e-2, callbacks=[sched]).fit(X)
    lr = est.net_.optimizer_.param_groups[0]["lr"]
    assert lr == pytest.approx(1e-2 * 0.1**N_EPOCHS)
    assert est.net_.history[:, "event_lr"] == pytest.approx([1e-2, 1e-3, 1e-4])
    assert not hasattr(sched, "lr_scheduler_")


def test_lr_scheduler_per_batch(make, X):
    sched = LRScheduler(policy=torch.optim.lr_scheduler.StepLR, step_size=1,
                        gamma=0.5, step_every="batch")
    est = make(learning_rate=1e-2, callbacks=[sched]).fit(X)
    lr = est.net_.optimizer_.param_groups[0]["lr"]
    assert lr == pytest.approx(1e-2 * 0.5 ** (N_EPOCHS * N_TRAIN_BATCHES))


def test_warm_restart_lr(make, X):
    sched = LRScheduler(WarmRestartLR, min_lr=1e-4, max_lr=1e-2, base_period=2)
    est = make(learning_rate=1e-2, callbacks=[sched]).fit(X)
    lrs = est.net_.history[:, "event_lr"]
    assert lrs[0] == pytest.approx(1e-2) and lrs[1] < lrs[0]


def test_gradient_norm_clipping(make, X):
    class GradNorm(Callback):
        def initialize(self):
            self.norms_ = []
            return self

        def on_grad_computed(self, net, named_parameters, **kwargs):
            grads = [p.grad for _, p in named_parameters if p.grad is not None]
            self.norms_.append(float(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    est = make(learning_rate=1.0, callbacks=[
        GradientNormClipping(gradient_clip_value=1e-3), ("norm", GradNorm())
    ]).fit(X)
    norms = dict(est.net_.callbacks_)["norm"].norms_
    assert len(norms) == N_EPOCHS * N_TRAIN_BATCHES
    assert max(norms) <= 1e-3 * (1 + 1e-4)


def test_freezer(make, X):
    name = first_weight(make, X)
    bias = name.removesuffix("weight") + "bias"
    before = initial_weights(make, X)
    # early_stopping=False: restore-best could bring back the start, where
    # nothing moved.
    est = make(early_stopping=False, callbacks=[Freezer(name)]).fit(X)
    after = weights(est)
    torch.testing.assert_close(after[name], before[name])
    assert not torch.equal(after[bias], before[bias])


def test_unfreezer(make, X):
    name = first_weight(make, X)
    before = initial_weights(make, X)
    est = make(
        early_stopping=False,  # no restore-best of an epoch before the unfreezing
        callbacks=[Freezer(name), Unfreezer(name, at=N_EPOCHS)],
    ).fit(X)
    # Frozen in epochs 1-2, trained in epoch 3.
    assert not torch.equal(weights(est)[name], before[name])
    assert est.module_.state_dict(keep_vars=True)[name].requires_grad


def test_initializer(make, X):
    name = first_weight(make, X)
    init = Initializer(name, fn=torch.nn.init.zeros_)
    # early_stopping=False: restore-best would bring back the start, whose
    # weights were taken before the initializer ran.
    est = make(learning_rate=1e-12, early_stopping=False, callbacks=[init]).fit(X)
    assert float(weights(est)[name].abs().max()) < 1e-9


def test_param_mapper(make, X):
    seen = []
    mapper = ParamMapper(first_weight(make, X), fn=lambda p: seen.append(p.shape), at=2)
    make(callbacks=[mapper]).fit(X)
    assert len(seen) == 1


def test_early_stopping(make, X):
    # No change counts as an improvement: stops once patience runs out.
    stop = EarlyStopping(monitor="valid_loss", patience=2, threshold=10.0)
    est = make(max_iter=20, callbacks=[stop]).fit(X)
    assert est.n_iter_ == 3


def test_mlflow_logger(make, X, tmp_path, monkeypatch):
    # mlflow (even mlflow-skinny) pulls some 30 packages (cryptography,
    # fastapi, databricks-sdk...): not in the tests extra, skipped without it.
    mlflow = pytest.importorskip("mlflow")
    from skorch.callbacks import MlflowLogger

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # no database at hand
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    with mlflow.start_run() as run:
        make(callbacks=[MlflowLogger(run, mlflow.tracking.MlflowClient())]).fit(X)
    history = mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "train_loss")
    assert len(history) == N_EPOCHS


# ------------------------------------------------------------ GridSearchCV
def test_grid_search_with_callbacks(make, X, tmp_path):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "tb"))
    callbacks = [
        TensorBoard(writer),
        Checkpoint(dirname=str(tmp_path / "cp")),
        LRScheduler(policy=torch.optim.lr_scheduler.StepLR, step_size=1),
        EpochScoring("r2"),
        PrintLog(sink=lambda text: None),
        Freezer(first_weight(make, X)),
    ]
    est = make(callbacks=callbacks, max_iter=2)
    scoring = None
    if not hasattr(est, "score"):  # the outlier detector
        def scoring(estimator, X_test, y=None):
            return float(np.mean(estimator.score_samples(X_test)))

    search = GridSearchCV(
        est, {"learning_rate": [1e-3, 1e-2]}, cv=2, scoring=scoring
    ).fit(X)
    assert search.best_estimator_.net_.history[-1, "r2"] is not None
    assert clone(est).callbacks[0].writer is writer  # shared, not copied
    writer.close()


def test_fresh_callback_keeps_kwargs_and_shares_objects():
    marker = object()
    sched = LRScheduler(policy=torch.optim.lr_scheduler.StepLR, step_size=3)
    sched.extra = marker
    fresh = fresh_callback(sched)
    assert fresh is not sched and fresh.step_size == 3 and fresh.extra is marker
    freezer = Freezer("a*")  # *args: rebuilt by a shallow copy
    assert fresh_callback(freezer).patterns == "a*"


def test_verbose_2_prints_one_line_per_epoch(make, X, capsys):
    make(verbose=2).fit(X)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch")]
    assert len(lines) == N_EPOCHS
    assert "train loss = " in lines[0] and "validation loss = " in lines[0]
    assert lines[0].endswith(" s")


# ---------------------------------------------------------------- optimizer
@pytest.mark.parametrize(
    "optimizer, params",
    [(torch.optim.SGD, {"optimizer__momentum": 0.9}),
     (torch.optim.AdamW, {"optimizer__betas": (0.8, 0.9)}),
     # LBFGS: skorch's closure step; plain LBFGS steps diverge on the ensemble.
     (torch.optim.LBFGS, {"optimizer__line_search_fn": "strong_wolfe"})],
)
def test_optimizer(make, X, optimizer, params):
    est = make(optimizer=optimizer, **params).fit(X)
    assert type(est.net_.optimizer_) is optimizer
    group = est.net_.optimizer_.param_groups[0]
    for name, value in params.items():
        assert group[name.removeprefix("optimizer__")] == value
    assert group["lr"] == est.learning_rate
    assert est.get_params()[next(iter(params))] == next(iter(params.values()))


def test_optimizer_grid_search(X):
    est = ESTIMATORS["ae"](optimizer=torch.optim.SGD, optimizer__momentum=0.0)
    search = GridSearchCV(est, {"optimizer__momentum": [0.0, 0.9]}, cv=2).fit(X)
    assert search.best_params_["optimizer__momentum"] in (0.0, 0.9)
    assert search.best_estimator_.net_.optimizer_.param_groups[0]["momentum"] in (0.0, 0.9)


def test_adam_keeps_the_fast_path(make, X):
    from sklearn_ae._optim import FusedAdam

    est = make().fit(X)
    assert type(est.net_.optimizer_) is FusedAdam
    assert est.net_.optimizer_.param_groups[0]["fused"] is True


@pytest.mark.parametrize(
    "params, match",
    [({"optimizer": "sgd"}, "optimizer must be a torch.optim.Optimizer subclass"),
     ({"optimizer": torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1)},
      "the class, not an instance"),
     ({"optimizer": torch.optim.SGD, "optimizer__momentun": 0.9},
      "optimizer__momentun is not an argument of SGD"),
     ({"optimizer__lr": 0.1}, "use the learning_rate parameter"),
     ({"optimzer__lr": 0.1}, "'optimzer__lr' is not a parameter"),
     # was torch's TypeError: Rprop.__init__() got an unexpected keyword
     ({"optimizer": torch.optim.Rprop, "weight_decay": 0.1},
      r"weight_decay=0.1 is set, but Rprop takes no weight_decay")],
)
def test_optimizer_errors(make, X, params, match):
    with pytest.raises(ValueError, match=match):
        make(**params).fit(X)


def optimizer_steps(est):
    """The steps the optimizer's state has counted (Adam's, on the first weight)."""
    return int(next(iter(est.net_.optimizer_.state_dict()["state"].values()))["step"])


@pytest.mark.parametrize("continuation", ["warm_start", "partial_fit"])
def test_continued_training_takes_a_changed_optimizer(make, X, continuation):
    """A warm start or partial_fit continues the optimizer and its state
    while the settings stay, and takes changed ones (optimizer, optimizer__*,
    weight_decay) with a fresh optimizer: they were ignored."""
    est = make(warm_start=True)
    train = getattr(est, "fit" if continuation == "warm_start" else continuation)
    train(X)
    steps = optimizer_steps(est)
    train(X)
    assert optimizer_steps(est) > steps  # the same Adam, continued
    est.set_params(optimizer=torch.optim.SGD, optimizer__momentum=0.9, weight_decay=1e-3)
    train(X)
    group = est.net_.optimizer_.param_groups[0]
    assert type(est.net_.optimizer_) is torch.optim.SGD
    assert group["momentum"] == 0.9 and group["weight_decay"] == 1e-3
    est.set_params(optimizer__momentum=0.5)
    train(X)
    assert est.net_.optimizer_.param_groups[0]["momentum"] == 0.5


def continue_training(est, X, continuation):
    """A warm-start fit or a partial_fit of an estimator fitted before."""
    return est.fit(X) if continuation == "warm_start" else est.partial_fit(X)


@pytest.mark.parametrize("continuation", ["warm_start", "partial_fit"])
def test_continued_training_runs_the_callbacks_set_now(make, X, continuation):
    """A warm start or partial_fit trains with fresh copies of the callbacks
    set now: it ran the first fit's instead. The user's objects come out as
    they went in, and clone still works."""
    est = make(warm_start=True, callbacks=[EpochScoring("r2", name="r2_first", on_train=True)])
    est.fit(X)
    n_before = len(est.net_.history)
    second = EpochScoring("r2", name="r2_second", on_train=True)
    est.set_params(callbacks=[second])
    continue_training(est, X, continuation)
    rows = est.net_.history[n_before:]
    assert len(rows) >= 1
    assert all("r2_second" in row and "r2_first" not in row for row in rows)
    assert all(cb is not second for _, cb in est.net_.callbacks_)
    assert vars(second) == vars(EpochScoring("r2", name="r2_second", on_train=True))
    copy = clone(est)
    assert copy.callbacks[0] is not second
    assert "r2_second" in copy.fit(X).net_.history[-1]


@pytest.mark.parametrize("continuation", ["warm_start", "partial_fit"])
def test_continued_training_takes_a_changed_verbose(make, X, continuation, capsys):
    """verbose=2 set before a warm start or partial_fit prints its epochs'
    lines (the first fit's silent record was kept); verbose=0 again is silent."""
    est = make(warm_start=True).fit(X)
    capsys.readouterr()
    n_before = len(est.net_.history)
    est.set_params(verbose=2)
    continue_training(est, X, continuation)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch")]
    assert len(lines) == len(est.net_.history) - n_before >= 1
    assert lines[-1].startswith(f"Epoch {len(est.net_.history)},")
    est.set_params(verbose=0)
    continue_training(est, X, continuation)
    assert "Epoch" not in capsys.readouterr().out


def test_warm_start_takes_changed_early_stopping(make, X):
    """early_stopping, n_iter_no_change and validation_fraction set before a
    warm start apply to it (switching early stopping on raised KeyError, a
    new patience was ignored); the validation rows stay the earlier fit's
    while validation_fraction does."""
    est = make(warm_start=True, early_stopping=False, random_state=np.random.RandomState(0))
    est.fit(X)
    est.set_params(early_stopping=True, n_iter_no_change=7)
    est.fit(X)
    stopper = dict(est.net_.callbacks_)["early_stopping"]
    assert stopper.monitor == "valid_loss" and stopper.patience == 7
    assert "valid_loss" in est.net_.history[-1]
    assert len(est.validation_scores_) == N_EPOCHS
    split = est.net_.train_split
    est.fit(X)  # another seed drawn from random_state, the same rows
    assert est.net_.train_split.seed == split.seed
    est.set_params(validation_fraction=0.5)
    est.fit(X)
    assert est.net_.train_split.fraction == 0.5
    assert sum(est.net_.history[-1, "batches", :, "valid_batch_size"]) == N_SAMPLES // 2
    est.set_params(early_stopping=False)
    est.fit(X)
    assert est.net_.train_split is None and "valid_loss" not in est.net_.history[-1]
    assert est.validation_scores_ is None


def test_warm_start_best_flags_count_over_the_whole_history(make, X):
    """After a warm start an epoch is flagged ``valid_loss_best`` only if it
    beats every earlier epoch's validation loss, the first fit's included:
    skorch's loss records carry on (fresh ones flagged the first epoch of
    every continued fit)."""
    est = make(warm_start=True).fit(X)
    n_before = len(est.net_.history)
    # Weights that do not move: the restored best epoch's validation loss again.
    est.set_params(learning_rate=1e-12)
    est.fit(X)
    losses = est.net_.history[:, "valid_loss"]
    flags = est.net_.history[:, "valid_loss_best"]
    for epoch in range(n_before, len(losses)):
        assert flags[epoch] == (losses[epoch] < min(losses[:epoch]))


@pytest.mark.parametrize("continuation", ["warm_start", "partial_fit"])
def test_vae_ramps_follow_the_parameters_set_now(X, continuation):
    """The VAE's learning-rate ramp (Adam's only) is left out when a
    continued fit switches to SGD (it scaled SGD's rate: 0.01 instead of
    0.05 at epoch 2), and is back, counting the network's epochs, with Adam;
    a kl_warmup set later ramps from the network's epoch count."""
    est = ESTIMATORS["vae"](
        warm_start=True, max_iter=1, learning_rate=0.05, early_stopping=False
    ).fit(X)
    assert est.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(0.005)
    est.set_params(optimizer=torch.optim.SGD, kl_warmup=10)
    continue_training(est, X, continuation)
    assert type(est.net_.optimizer_) is torch.optim.SGD
    assert est.net_.optimizer_.param_groups[0]["lr"] == 0.05
    assert est.net_.history[-1, "kl_weight"] == pytest.approx(0.2)
    est.set_params(optimizer=torch.optim.Adam)
    continue_training(est, X, continuation)
    assert est.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(0.015)


def test_convergence_warning_still_raised(X):
    with pytest.warns(ConvergenceWarning):
        ESTIMATORS["ae"]().fit(X)


def test_optimizer_save_load(make, X, tmp_path):
    from sklearn_ae import load

    est = make(optimizer=torch.optim.SGD, optimizer__momentum=0.9).fit(X)
    est.save(tmp_path / "m.safetensors")
    back = load(tmp_path / "m.safetensors")
    assert back.get_params()["optimizer__momentum"] == 0.9
    assert type(back.net_.optimizer_) is torch.optim.SGD
    assert back.net_.optimizer_.state_dict()["param_groups"][0]["momentum"] == 0.9


def test_warm_start_with_an_object_that_cannot_be_copied(make, X, tmp_path):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    est = make(warm_start=True, early_stopping=False,
               callbacks=[TensorBoard(writer, close_after_train=False)])
    est.fit(X).fit(X)
    assert est.n_iter_ == 2 * N_EPOCHS
    writer.close()


def test_verbose_1_keeps_the_epoch_bar(make, X, capsys):
    make(verbose=1).fit(X)
    err = capsys.readouterr().err
    assert "epoch" in err and "it/s" not in err  # tqdm over epochs, not batches


@pytest.mark.parametrize("hooked", [False, True])
def test_divergence_detected_on_both_paths(make, X, hooked):
    callbacks = [Spy()] if hooked else None
    with pytest.raises(ValueError, match="diverged"):
        make(learning_rate=1e4, optimizer=torch.optim.SGD, max_iter=20,
             callbacks=callbacks).fit(X * 1e3)


def test_outlier_vae_backbone_gets_the_optimizer(X):
    est = ESTIMATORS["outlier"](
        backbone="vae", optimizer=torch.optim.SGD, optimizer__momentum=0.5
    ).fit(X)
    optimizer = est.backbone_.net_.optimizer_
    assert type(optimizer) is torch.optim.SGD
    assert optimizer.param_groups[0]["momentum"] == 0.5


@pytest.mark.parametrize("continuation", ["warm_start", "partial_fit"])
def test_outlier_vae_backbone_continues_under_the_parameters_set_now(X, continuation):
    """With backbone='vae', a warm start (which fitted a new VAE) or a later
    partial_fit (which kept the first call's settings) continues the fitted
    VAE under the optimizer, learning_rate and callbacks set now; the earlier
    backbone_ is left as it was, and so is backbone_ when the call raises."""
    est = ESTIMATORS["outlier"](backbone="vae", warm_start=True, early_stopping=False)
    continue_training(est, X, continuation)
    before = est.backbone_
    n_iter, params = before.n_iter_, before.get_params()
    est.set_params(
        optimizer=torch.optim.SGD, optimizer__momentum=0.5, learning_rate=0.05,
        callbacks=[EpochScoring("r2", name="r2", on_train=True)],
    )
    continue_training(est, X, continuation)
    net = est.backbone_.net_
    assert est.n_iter_ == len(net.history) == 2 * n_iter  # continued
    assert type(net.optimizer_) is torch.optim.SGD
    group = net.optimizer_.param_groups[0]
    assert group["momentum"] == 0.5 and group["lr"] == 0.05
    assert "r2" in net.history[-1]
    assert before.n_iter_ == n_iter and before.get_params() == params
    after = est.backbone_
    est.set_params(n_components=3)  # another network: refused
    with pytest.raises(ValueError, match="network"):
        continue_training(est, X, continuation)
    assert est.backbone_ is after and after.get_params()["n_components"] == 2


def test_outlier_estimator_backbone_partial_fit_takes_backbone_params(X):
    """An estimator backbone's later partial_fit takes backbone__* set since;
    a backbone of another class starts a new one."""
    vae = VAETransformer(n_components=2, hidden_layer_sizes=(8,), random_state=0, device="cpu")
    est = AEOutlierDetector(backbone=vae, device="cpu").partial_fit(X)
    est.set_params(backbone__optimizer=torch.optim.SGD, backbone__learning_rate=0.05)
    est.partial_fit(X)
    net = est.backbone_.net_
    assert len(net.history) == 2 and type(net.optimizer_) is torch.optim.SGD
    assert net.optimizer_.param_groups[0]["lr"] == 0.05
    assert not hasattr(vae, "net_")  # the parameter is never fitted
    est.set_params(backbone=AutoencoderTransformer(
        n_components=2, hidden_layer_sizes=(8,), random_state=0, device="cpu"
    ))
    est.partial_fit(X)
    assert type(est.backbone_) is AutoencoderTransformer and est.n_iter_ == 1


@pytest.mark.parametrize(
    "callback",
    [lambda path: EarlyStopping(), lambda path: EarlyStopping,
     lambda path: Checkpoint(dirname=str(path)),
     lambda path: LRScheduler(policy="ReduceLROnPlateau", monitor="valid_loss")],
    ids=["EarlyStopping()", "EarlyStopping", "Checkpoint", "ReduceLROnPlateau"],
)
def test_callbacks_reading_validation_scores_need_validation_rows(make, X, callback, tmp_path):
    # Without validation rows skorch failed after the first epoch with a
    # KeyError from its history ("Key 'valid_loss' was not found").
    est = make(callbacks=[callback(tmp_path)])
    assert est.fit(X).n_iter_ == N_EPOCHS  # early_stopping=True: they work
    fitted = est.transform(X) if hasattr(est, "transform") else est.score_samples(X)
    with pytest.raises(ValueError, match="reads a validation score, but early_stopping=False"):
        est.set_params(early_stopping=False).fit(X)
    with pytest.raises(ValueError, match="reads a validation score, but partial_fit"):
        est.set_params(early_stopping=True).partial_fit(X)
    # the failed calls left the fit as it was
    after = est.transform(X) if hasattr(est, "transform") else est.score_samples(X)
    np.testing.assert_array_equal(after, fitted)
    # a training score works without validation rows
    make(early_stopping=False, callbacks=[EarlyStopping(monitor="train_loss")]).fit(X)
    make(callbacks=[EarlyStopping(monitor="train_loss")]).partial_fit(X)


@pytest.mark.parametrize("bad", [lambda net: None, 3, ("name",), (1, PrintLog())])
def test_callbacks_that_are_not_callbacks_are_named(bad):
    X = np.random.RandomState(0).randn(20, 3)
    with pytest.raises(ValueError, match="callbacks must hold skorch callbacks"):
        AutoencoderTransformer(max_iter=1, callbacks=[bad], device="cpu").fit(X)


def test_start_of_a_custom_network_comes_back_when_the_sign_test_fails(monkeypatch):
    # When the best epoch fails the sign test, the start's weights are
    # loaded back. With a linear path the later "PCA of every row" restore
    # hid a skipped reload, so it passed every test (a mutation audit); a
    # custom network (no linear path) shows it. At a level of 1e-6, 10
    # validation rows (p >= 2**-10) can never pass.
    class Start(Callback):
        def on_train_begin(self, net, **kwargs):
            self.state_ = copy.deepcopy(net.module_.state_dict())

    def network(n_in, n_out):
        return torch.nn.Sequential(
            torch.nn.Linear(n_in, 16), torch.nn.Tanh(), torch.nn.Linear(16, n_out)
        )

    monkeypatch.setattr(AutoencoderTransformer, "_start_significance", 1e-6)
    rng = np.random.RandomState(1)
    X = np.tanh(rng.randn(100, 2) @ rng.randn(2, 6)) + 0.05 * rng.randn(100, 6)
    start = Start()
    ae = AutoencoderTransformer(
        2, encoder=lambda n_features, n_components: network(n_features, n_components),
        decoder=lambda n_features, n_components: network(n_components, n_features),
        max_iter=30, n_iter_no_change=3, batch_size=90, random_state=0, device="cpu",
        callbacks=[("start", start)],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae.fit(X)
    stopper = dict(ae.net_.callbacks_)["early_stopping"]
    assert stopper.kept_start_ and stopper.improvement_p_ >= 1e-6
    for name, value in ae.module_.state_dict().items():
        torch.testing.assert_close(value, dict(ae.net_.callbacks_)["start"].state_[name],
                                   rtol=0, atol=0)
