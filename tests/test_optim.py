"""FusedAdam.fast_step makes exactly torch's fused Adam update."""

import copy
import inspect
import subprocess
import sys

import pytest
import torch

from sklearn_ae._networks import MLPAutoencoder
from sklearn_ae._optim import FusedAdam


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _train(
    optimizer_cls, step, *, n_steps=6, lr_change=True, freeze=False, device="cpu",
    **options,
):
    torch.manual_seed(0)
    module = MLPAutoencoder(7, 2, (5,)).to(device)
    if freeze:
        module.decoder.linear.bias.requires_grad_(False)
    opt = optimizer_cls(
        [p for p in module.parameters() if p.requires_grad], lr=0.01,
        **{"fused": True, **options},
    )
    X = torch.randn(32, 7).to(device)
    for i in range(n_steps):
        for p in module.parameters():
            p.grad = None
        torch.nn.functional.mse_loss(module(X), X).backward()
        if i == 3 and lr_change:
            opt.param_groups[0]["lr"] = 0.003  # what an LR scheduler does
        step(opt)
    return module, opt


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("options", [{}, {"weight_decay": 0.1}, {"maximize": True}])
def test_fast_step_matches_torch_adam_bit_for_bit(options, device):
    ref, ref_opt = _train(torch.optim.Adam, lambda o: o.step(), device=device, **options)
    fast, fast_opt = _train(FusedAdam, lambda o: o.fast_step(), device=device, **options)
    assert fast_opt._fast_plan is not None  # the fast path was taken
    for a, b in zip(ref.parameters(), fast.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(ref.parameters(), fast.parameters()):
        sa, sb = ref_opt.state[a], fast_opt.state[b]
        assert all(torch.equal(sa[k], sb[k]) for k in ("step", "exp_avg", "exp_avg_sq"))


def test_fast_step_skips_a_frozen_parameter_like_torch():
    # A parameter outside the optimizer has no state; one inside whose
    # gradient is None sends that step through torch's own step().
    ref, _ = _train(torch.optim.Adam, lambda o: o.step(), freeze=True)
    fast, _ = _train(FusedAdam, lambda o: o.fast_step(), freeze=True)
    for a, b in zip(ref.parameters(), fast.parameters()):
        assert torch.equal(a, b)


def test_fast_step_falls_back_where_it_does_not_apply():
    # amsgrad is not on the fast path: same result as torch, via step().
    ref, _ = _train(torch.optim.Adam, lambda o: o.step(), amsgrad=True)
    fast, opt = _train(FusedAdam, lambda o: o.fast_step(), amsgrad=True)
    assert opt._fast_plan is None
    for a, b in zip(ref.parameters(), fast.parameters()):
        assert torch.equal(a, b)


def test_fast_step_with_a_hook_or_a_reloaded_state_uses_step():
    module, opt = _train(FusedAdam, lambda o: o.fast_step(), n_steps=2)
    calls = []
    handle = opt.register_step_post_hook(lambda *args: calls.append(1))
    opt.fast_step()
    assert calls == [1]
    handle.remove()
    opt.fast_step()  # no hook: plans again
    assert opt._plan_is_current(opt._fast_plan)
    opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert not opt._plan_is_current(opt._fast_plan)



def test_fast_step_with_a_parameter_without_gradient_matches_torch():
    def run(optimizer_cls, step):
        torch.manual_seed(0)
        used = torch.nn.Linear(3, 3)
        unused = torch.nn.Parameter(torch.randn(2))  # never gets a gradient
        opt = optimizer_cls([*used.parameters(), unused], lr=0.01, fused=True)
        X = torch.randn(8, 3)
        for _ in range(4):
            for p in used.parameters():
                p.grad = None
            used(X).square().mean().backward()
            step(opt)
        return [*used.parameters(), unused]

    ref = run(torch.optim.Adam, lambda o: o.step())
    fast = run(FusedAdam, lambda o: o.fast_step())
    for a, b in zip(ref, fast):
        assert torch.equal(a, b)


def test_without_the_private_torch_apis_fast_step_is_step(monkeypatch):
    # A torch release without the registries of global hooks or the fused
    # kernel must still import the module, and fast_step must be step.
    import importlib.util

    from torch.optim import optimizer as torch_optimizer

    import sklearn_ae._optim as optim_module

    monkeypatch.delattr(torch_optimizer, "_global_optimizer_pre_hooks")
    monkeypatch.delattr(torch, "_fused_adam_")
    spec = importlib.util.spec_from_file_location("_optim_copy", optim_module.__file__)
    copy_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy_module)
    assert not copy_module.fast_path_available()
    assert optim_module.fast_path_available()
    monkeypatch.undo()  # torch's own step needs its kernel back

    ref, _ = _train(torch.optim.Adam, lambda o: o.step())
    fast, opt = _train(copy_module.FusedAdam, lambda o: o.fast_step())
    assert opt._fast_plan is None  # never planned: every step was torch's
    for a, b in zip(ref.parameters(), fast.parameters()):
        assert torch.equal(a, b)


def _load_optim_copy():
    """Import a fresh copy of sklearn_ae._optim (its guards run at import)."""
    import importlib.util

    import sklearn_ae._optim as optim_module

    spec = importlib.util.spec_from_file_location("_optim_copy", optim_module.__file__)
    copy_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy_module)
    return copy_module


def _closure_step(opt):
    # skorch's path when a callback has per-batch hooks: step(closure).
    loss = opt.step(lambda: torch.tensor(1.5))
    assert loss.item() == 1.5


@pytest.mark.parametrize("step", [lambda o: o.step(), _closure_step])
@pytest.mark.parametrize("options", [{}, {"amsgrad": True}, {"fused": False}])
def test_step_without_dynamo_guard_matches_torch_adam(step, options):
    ref, ref_opt = _train(torch.optim.Adam, step, **options)
    ours, opt = _train(FusedAdam, step, **options)
    assert torch.is_grad_enabled()  # step restores the caller's grad mode
    for a, b in zip(ref.parameters(), ours.parameters()):
        assert torch.equal(a, b)
    ref_state, state = ref_opt.state_dict(), opt.state_dict()
    assert ref_state["param_groups"] == state["param_groups"]
    for i, s in ref_state["state"].items():
        assert all(torch.equal(s[k], state["state"][i][k]) for k in s)


def test_state_dict_round_trip_matches_torch_adam():
    ref, ref_opt = _train(torch.optim.Adam, lambda o: o.step(), n_steps=2)
    ours, opt = _train(FusedAdam, lambda o: o.fast_step(), n_steps=2)
    fresh = FusedAdam(ours.parameters(), lr=0.5, fused=True)
    fresh.load_state_dict(ref_opt.state_dict())
    assert fresh.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]
    for p in ours.parameters():
        assert torch.equal(fresh.state[p]["exp_avg"], opt.state[p]["exp_avg"])
    fresh.zero_grad()
    assert all(p.grad is None for p in ours.parameters())


def test_the_decorated_methods_are_skipped_only_outside_torch_compile(monkeypatch):
    import functools

    import sklearn_ae._optim as optim_module

    assert optim_module.dynamo_free_methods() == [
        "add_param_group", "load_state_dict", "state_dict", "step", "zero_grad"
    ]
    # A stand-in for torch's decorator that records its calls.
    calls = []
    plain = inspect.unwrap(torch.optim.Optimizer.add_param_group)

    @functools.wraps(plain)
    def decorated(self, group):
        calls.append(1)
        return plain(self, group)

    monkeypatch.setattr(torch.optim.Optimizer, "add_param_group", decorated)
    copy_module = _load_optim_copy()
    copy_module.FusedAdam(torch.nn.Linear(2, 2).parameters(), fused=True)
    assert calls == []
    # While torch.compile traces, torch's decorated method is called.
    monkeypatch.setattr(copy_module, "_compiling", lambda: True)
    copy_module.FusedAdam(torch.nn.Linear(2, 2).parameters(), fused=True)
    assert calls == [1]


def test_without_the_plain_functions_fusedadam_is_torch_adam(monkeypatch):
    # A torch release whose methods carry no __wrapped__ (or a different
    # Adam._init_group) must still import the module and train like Adam.
    for name in ("add_param_group", "zero_grad", "state_dict", "load_state_dict"):
        plain = inspect.unwrap(getattr(torch.optim.Optimizer, name))
        monkeypatch.setattr(torch.optim.Optimizer, name, plain)
    monkeypatch.setattr(torch.optim.Adam, "_init_group", lambda self, group: None)
    copy_module = _load_optim_copy()
    assert copy_module.dynamo_free_methods() == ["step"]
    assert not copy_module.fast_path_available()
    monkeypatch.undo()

    ref, _ = _train(torch.optim.Adam, lambda o: o.step())
    ours, opt = _train(copy_module.FusedAdam, lambda o: o.fast_step())
    assert opt._fast_plan is None
    for a, b in zip(ref.parameters(), ours.parameters()):
        assert torch.equal(a, b)


FIRST_FIT = """
import sys
import warnings

import numpy as np
import torch

import sklearn_ae
import sklearn_ae._base
from sklearn_ae import AutoencoderTransformer

warnings.simplefilter("ignore")
X = np.random.RandomState(0).standard_normal((300, 12)).astype(np.float32)
params = dict(n_components=3, max_iter=2, batch_size=64, random_state=0)
fast = AutoencoderTransformer(**params).fit(X)
assert "torch._dynamo" not in sys.modules, "the first fit imported torch._dynamo"
sklearn_ae._base.FusedAdam = torch.optim.Adam  # torch's own Adam and step()
plain = AutoencoderTransformer(**params).fit(X)
assert "torch._dynamo" in sys.modules  # the check above can fail
for a, b in zip(fast.module_.parameters(), plain.module_.parameters()):
    assert torch.equal(a, b)
print("ok")
"""


def test_first_fit_in_a_process_does_not_import_dynamo():
    # A fresh process: the test session may have imported torch._dynamo.
    result = subprocess.run(
        [sys.executable, "-c", FIRST_FIT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


VARIANT_FITS = """
import sys
import warnings

import numpy as np

from sklearn_ae import AEOutlierDetector, AutoencoderTransformer, VAETransformer

warnings.simplefilter("ignore")
X = np.random.RandomState(0).standard_normal((300, 12)).astype(np.float32)
AutoencoderTransformer(
    n_components=3, layerwise_pretraining=True, pretraining_max_iter=1, max_iter=1,
    random_state=0,
).fit(X)
VAETransformer(n_components=3, max_iter=1, random_state=0).fit(X)
AEOutlierDetector(n_components=3, max_iter=1, random_state=0).fit(X)
assert "torch._dynamo" not in sys.modules, "a fit imported torch._dynamo"
print("ok")
"""


def test_pretraining_vae_and_detector_fits_do_not_import_dynamo():
    # Layer-wise pretraining built torch.optim.Adam, whose constructor imports
    # torch._dynamo (a second-long first fit).
    result = subprocess.run(
        [sys.executable, "-c", VARIANT_FITS], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
