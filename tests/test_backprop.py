"""The hand-written training step (sklearn_ae._backprop) against autograd."""

import numpy as np
import pytest
import torch

import sklearn_ae._engine as engine
from sklearn_ae import AEOutlierDetector, AutoencoderTransformer, VAETransformer
from sklearn_ae._backprop import manual_step_for
from sklearn_ae._losses import ReconstructionLoss
from sklearn_ae._networks import Autoencoder, MLPAutoencoder, mlp


def _randomized(module, seed=0):
    # Every parameter nonzero (the branches' output layers start at zero,
    # which would leave the layers below them without a gradient).
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=generator))
    return module


def _autograd(module, criterion, x):
    module.zero_grad(set_to_none=True)
    loss = criterion(module(x), x)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in module.named_parameters()}


def _manual(module, criterion, x):
    module.zero_grad(set_to_none=True)
    step = manual_step_for(module, criterion)
    assert step is not None
    loss = step(x, x)
    return loss, {name: p.grad.clone() for name, p in module.named_parameters()}


NETWORKS = {
    "default (linear paths, relu)": lambda: MLPAutoencoder(12, 3, (16, 8)),
    "one hidden layer": lambda: MLPAutoencoder(12, 3, (16,)),
    # 512 features, a code of 128 (CIFAR10_0 in bench_representation): the
    # code's two gradients summed by an accumulating product (addmm_) were
    # rounded differently from autograd's sum of two products
    "wide code": lambda: MLPAutoencoder(512, 128, (64, 32)),
    "linear only": lambda: MLPAutoencoder(12, 3, ()),
    "tanh": lambda: MLPAutoencoder(12, 3, (16, 8), activation="tanh"),
    "logistic": lambda: MLPAutoencoder(12, 3, (16, 8), activation="logistic"),
    "leaky_relu": lambda: MLPAutoencoder(12, 3, (16, 8), activation="leaky_relu"),
    "identity": lambda: MLPAutoencoder(12, 3, (16, 8), activation="identity"),
    "plain stacks, no linear path": lambda: Autoencoder(
        mlp([12, 16, 3]), mlp([3, 16, 12]), return_code=True
    ),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_manual_step_matches_autograd(name):
    torch.manual_seed(0)
    module = _randomized(NETWORKS[name]()).train()
    criterion = ReconstructionLoss("mse")
    x = torch.randn(37, 512 if name == "wide code" else 12)
    expected_loss, expected = _autograd(module, criterion, x)
    loss, grads = _manual(module, criterion, x)
    # The gradients bit for bit: the same kernels on the same operands
    # (autograd computes a transposed weight's gradient as
    # (grad.t() @ input).t()). The loss is the residual's dot product,
    # summed in another order than F.mse_loss: equal to float32 rounding.
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=0)
    assert grads.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(grads[key], expected[key], rtol=0, atol=0,
                                   msg=lambda m, key=key: f"{key}: {m}")


def test_manual_step_of_a_denoising_network_corrupts_the_input_not_the_target():
    module = _randomized(MLPAutoencoder(12, 3, (16,), noise="gaussian", noise_level=0.5)).train()
    criterion = ReconstructionLoss("mse")
    x = torch.randn(20, 12)
    torch.manual_seed(1)
    expected_loss, expected = _autograd(module, criterion, x)
    torch.manual_seed(1)  # the same noise draw
    loss, grads = _manual(module, criterion, x)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=0)
    for key in expected:
        torch.testing.assert_close(grads[key], expected[key], rtol=0, atol=0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: (MLPAutoencoder(12, 3, (16,), tied_weights=True), ReconstructionLoss("mse")),
        lambda: (MLPAutoencoder(12, 3, (16,), batch_norm=True), ReconstructionLoss("mse")),
        lambda: (MLPAutoencoder(12, 3, (16,), dropout=0.2), ReconstructionLoss("mse")),
        lambda: (MLPAutoencoder(12, 3, (16,), activation="elu"), ReconstructionLoss("mse")),
        lambda: (MLPAutoencoder(12, 3, (16,)), ReconstructionLoss("bce")),
        lambda: (
            MLPAutoencoder(12, 3, (16,), return_code=True),
            ReconstructionLoss("mse", sparsity="l1", sparsity_weight=0.1),
        ),
        lambda: (MLPAutoencoder(12, 3, (16,), code_activation="logistic"),
                 ReconstructionLoss("mse")),
        lambda: (MLPAutoencoder(12, 3, (16,), carry=True), ReconstructionLoss("mse")),
    ],
    ids=["tied", "batch_norm", "dropout", "elu", "bce", "sparsity", "code_activation",
         "carried"],
)
def test_no_manual_step_where_it_would_not_compute_what_autograd_does(build):
    module, criterion = build()
    assert manual_step_for(module, criterion) is None


def test_manual_step_steps_aside_for_frozen_parameters_and_hooks():
    module = MLPAutoencoder(12, 3, (16,))
    criterion = ReconstructionLoss("mse")
    step = manual_step_for(module, criterion)
    assert step.usable()
    module.encoder.linear.weight.requires_grad_(False)
    assert not step.usable()
    module.encoder.linear.weight.requires_grad_(True)
    handle = module.decoder.register_forward_hook(lambda *args: None)
    assert not step.usable()
    handle.remove()
    assert step.usable()
    # A batch it was not built for (another dtype) is left to autograd.
    assert step(torch.randn(4, 12, dtype=torch.float64), torch.randn(4, 12)) is None


def _fit(estimator, X, manual, monkeypatch):
    calls = []
    original = engine.manual_step_for

    def spy(module, criterion):
        step = original(module, criterion) if manual else None
        calls.append(step is not None)
        return step

    with monkeypatch.context() as patch:
        patch.setattr(engine, "manual_step_for", spy)
        estimator.fit(X)
    return estimator, any(calls)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_trains_the_same_with_the_manual_step(monkeypatch):
    X = np.random.RandomState(0).randn(300, 10).astype(np.float32)
    params = dict(n_components=3, hidden_layer_sizes=(16, 8), max_iter=15, random_state=0)
    by_hand, used = _fit(AutoencoderTransformer(**params), X, True, monkeypatch)
    assert used
    by_autograd, used = _fit(AutoencoderTransformer(**params), X, False, monkeypatch)
    assert not used
    # the training losses to float32 rounding (summed in another order),
    # the network and so the validation scores bit for bit
    assert by_hand.n_iter_ == by_autograd.n_iter_
    np.testing.assert_allclose(by_hand.loss_curve_, by_autograd.loss_curve_, rtol=1e-6)
    assert by_hand.validation_scores_ == by_autograd.validation_scores_
    np.testing.assert_array_equal(by_hand.transform(X), by_autograd.transform(X))
    # ... and pickles (the step holds closures and is rebuilt when needed).
    import pickle

    restored = pickle.loads(pickle.dumps(by_hand))
    np.testing.assert_array_equal(restored.transform(X), by_hand.transform(X))
    restored.partial_fit(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "estimator",
    [
        AutoencoderTransformer(mixed_precision=True, max_iter=2),
        AutoencoderTransformer(sparsity="l1", max_iter=2),
        VAETransformer(max_iter=2),
    ],
    ids=["mixed_precision", "sparsity", "vae"],
)
def test_other_trainings_run_autograd(estimator, monkeypatch):
    X = np.random.RandomState(0).randn(120, 6).astype(np.float32)
    _, used = _fit(estimator, X, True, monkeypatch)
    assert not used


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_detector_trains_the_same_on_its_members_own_features(monkeypatch):
    # EnsembleStep leaves the other features out of the products; the
    # generic step runs forward's masked, full-width output. Same losses
    # and scores up to float32 rounding (sums in another order).
    X = np.random.RandomState(0).randn(300, 12).astype(np.float32)
    params = dict(n_components=3, max_iter=5, random_state=0, max_features=0.5)
    own, used = _fit(AEOutlierDetector(**params), X, True, monkeypatch)
    assert used
    masked, used = _fit(AEOutlierDetector(**params), X, False, monkeypatch)
    assert not used
    np.testing.assert_allclose(own.loss_curve_, masked.loss_curve_, rtol=1e-4)
    # scores are sums of z-scores (spread about 1): absolute agreement. Five
    # epochs carry the rounding into the weights; on an AMD EPYC machine the
    # scores differed by up to 1.7e-3 (under 1e-3 on Intel Xeon ones).
    np.testing.assert_allclose(own.score_samples(X), masked.score_samples(X), atol=5e-3)


def test_ensemble_own_features_match_the_masked_form():
    from sklearn_ae._ensemble import EnsembleAutoencoder

    torch.manual_seed(0)
    mask = torch.zeros(3, 10, dtype=torch.bool)
    for member, columns in enumerate(([0, 2, 5, 7], [1, 2, 3, 9], [4, 6, 8, 9])):
        mask[member, columns] = True
    module = EnsembleAutoencoder(mask, 2, (5,), batch_norm=True, dropout=0.0).eval()
    assert module.own_features().tolist() == [[0, 2, 5, 7], [1, 2, 3, 9], [4, 6, 8, 9]]
    x = torch.randn(16, 10)
    weights = torch.rand(3, 10) + 0.5
    with torch.no_grad():
        errors, codes = module.errors_and_codes(x, weights, log_residuals=True)
        training = module.training_errors(x)
        # the masked form, as forward computes it
        squared, masked_codes = module.squared_residuals(x)
        expected = torch.log1p(squared * weights.unsqueeze(1)).sum(dim=2) / 4
        masked_training = (module(x) - x).square().mean(dim=2)
    torch.testing.assert_close(codes, masked_codes)
    torch.testing.assert_close(errors, expected)
    torch.testing.assert_close(training, masked_training)
    # A forward hook on a layer the own-feature products replace: the
    # modules run, so the hook does.
    seen = []
    module.encoder[0].register_forward_hook(lambda *args: seen.append(1))
    module.encode(x)
    assert seen
    # The mask written in place (as load_state_dict does): a new index.
    swapped = mask.flip(0)
    module.load_state_dict({**module.state_dict(), "feature_mask": swapped})
    assert module.own_features().tolist() == [[4, 6, 8, 9], [1, 2, 3, 9], [0, 2, 5, 7]]
    # Members of different sizes: the masked form.
    mask[0, 1] = True
    uneven = EnsembleAutoencoder(mask, 2, (5,))
    assert uneven.own_features() is None and uneven.training_errors(x) is None
    assert uneven.errors_and_codes(x)[0].shape == (3, 16)

