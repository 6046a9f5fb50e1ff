"""Adam with a leaner step for small networks, and no import of torch._dynamo.

On a small tabular network, ``torch.optim.Adam(fused=True).step()`` spends
more time in Python bookkeeping (profiler records, hook loops, per-parameter
state look-ups, regrouping tensors by device) than in its fused kernel. The
training engine calls :meth:`FusedAdam.fast_step` instead, which feeds the
same kernel from lists built once.

Several ``Optimizer`` methods (``add_param_group``, called by ``__init__``;
``zero_grad``; ``state_dict``; ``load_state_dict``; and ``step``, through
``_use_grad_for_differentiable``) carry decorators that import
``torch._dynamo`` on their first call: about 800 modules and a second or more,
paid by the first fit of every process (every joblib worker of a grid search,
every short script). Those decorators only matter while ``torch.compile``
traces the call; outside it, :class:`FusedAdam` calls the functions they wrap.

The fused kernel (``torch._fused_adam_``), the registries of global optimizer
hooks, ``Adam._init_group`` and the functions under torch's decorators are
private torch APIs (tested with torch 2.13). Where a torch release lacks any
of them, the method concerned is torch's own and nothing else changes.
"""

import inspect

import torch
from torch.optim import optimizer as _torch_optimizer

_FUSED_ADAM = getattr(torch, "_fused_adam_", None)
_GLOBAL_PRE_HOOKS = getattr(_torch_optimizer, "_global_optimizer_pre_hooks", None)
_GLOBAL_POST_HOOKS = getattr(_torch_optimizer, "_global_optimizer_post_hooks", None)
_INIT_GROUP_ARGS = (
    "self", "group", "params_with_grad", "grads", "exp_avgs", "exp_avg_sqs",
    "max_exp_avg_sqs", "state_steps",
)


def _init_group_available():
    init_group = getattr(torch.optim.Adam, "_init_group", None)
    try:
        return tuple(inspect.signature(init_group).parameters) == _INIT_GROUP_ARGS
    except (TypeError, ValueError):
        return False


_INIT_GROUP = _init_group_available()


def _undecorated(function, name):
    """Return the plain function under torch's decorators of ``function``, or None.

    None when ``function`` carries no decorator (nothing to skip) or what is
    under it is not a plain function of that name.
    """
    if function is None:
        return None
    plain = inspect.unwrap(function)
    if plain is function or not inspect.isfunction(plain) or plain.__name__ != name:
        return None
    return plain


_PLAIN = {
    name: _undecorated(getattr(torch.optim.Optimizer, name, None), name)
    for name in ("add_param_group", "zero_grad", "state_dict", "load_state_dict")
}
_PLAIN["step"] = _undecorated(getattr(torch.optim.Adam, "step", None), "step")


def fast_path_available():
    """Whether this torch has the private APIs :meth:`FusedAdam.fast_step` uses."""
    return (
        _FUSED_ADAM is not None
        and _GLOBAL_PRE_HOOKS is not None
        and _GLOBAL_POST_HOOKS is not None
        and _INIT_GROUP
    )


def dynamo_free_methods():
    """Return the names of the ``FusedAdam`` methods that skip torch's decorators."""
    return sorted(name for name, plain in _PLAIN.items() if plain is not None)


def _compiling():
    return torch.compiler.is_compiling()


def _without_dynamo_guard(name):
    """``Optimizer.<name>`` calling the plain function unless torch.compile traces."""
    plain = _PLAIN[name]
    decorated = getattr(torch.optim.Optimizer, name)
    if plain is None:
        return decorated

    def method(self, *args, **kwargs):
        if _compiling():
            return decorated(self, *args, **kwargs)
        return plain(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    # torch's docstring (and its examples) stays on torch's method.
    method.__doc__ = (
        f"``torch.optim.Optimizer.{name}``, without importing ``torch._dynamo`` "
        "outside ``torch.compile``."
    )
    return method


class FusedAdam(torch.optim.Adam):
    """``torch.optim.Adam`` whose :meth:`fast_step` skips per-step bookkeeping.

    ``step`` runs torch's ``Adam.step`` code. ``fast_step`` makes the same
    update, bit for bit, by calling the fused kernel that ``step`` calls,
    with the state lists built on the first call. It falls back to ``step`` for anything it
    does not cover: ``fused`` off, ``amsgrad``, ``capturable``,
    ``differentiable``, decoupled weight decay, tensor hyperparameters, step
    hooks, a gradient scaler, a parameter without a gradient, parameters of
    mixed devices or dtypes, parameter groups or state changed since the
    lists were built (``add_param_group``, ``load_state_dict``), and a torch
    without the private APIs it calls (:func:`fast_path_available`).

    ``__init__`` (through ``add_param_group``), ``zero_grad``, ``state_dict``,
    ``load_state_dict``, ``step`` and ``fast_step`` do not import
    ``torch._dynamo`` (see :func:`dynamo_free_methods`); under
    ``torch.compile`` they are torch's own, decorators included.
    """

    add_param_group = _without_dynamo_guard("add_param_group")
    zero_grad = _without_dynamo_guard("zero_grad")
    state_dict = _without_dynamo_guard("state_dict")
    load_state_dict = _without_dynamo_guard("load_state_dict")

    def step(self, closure=None):
        """Make one optimisation step, as ``torch.optim.Adam.step`` does.

        Outside ``torch.compile`` this runs torch's ``Adam.step`` without the
        decorator that imports ``torch._dynamo`` for its graph breaks; the
        grad mode it sets, the profiler record and the step hooks (added by
        ``Optimizer``) are kept.
        """
        plain = _PLAIN["step"]
        if plain is None or _compiling():
            return _decorated_adam_step()(self, closure)
        grad_enabled = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(self.defaults["differentiable"])
            return plain(self, closure)
        finally:
            torch.set_grad_enabled(grad_enabled)

    def fast_step(self):
        """Make one optimisation step; return nothing."""
        plan = getattr(self, "_fast_plan", None)
        if plan is None or not self._plan_is_current(plan):
            plan = self._fast_plan = self._make_plan()
            if plan is None:
                self.step()
                return
        grads = [[p.grad for p in entry[1]] for entry in plan["groups"]]
        if any(g is None for group_grads in grads for g in group_grads):
            # torch's step skips such parameters (and their step counts).
            self.step()
            return
        with torch.no_grad():
            for (group, params, exp_avgs, exp_avg_sqs, step_views, counter), group_grads in zip(
                plan["groups"], grads
            ):
                beta1, beta2 = group["betas"]
                if counter is None:
                    torch._foreach_add_(step_views, 1)
                else:
                    counter.add_(1)
                _FUSED_ADAM(
                    params,
                    group_grads,
                    exp_avgs,
                    exp_avg_sqs,
                    [],
                    step_views,
                    amsgrad=False,
                    lr=group["lr"],
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=group["weight_decay"],
                    eps=group["eps"],
                    maximize=group["maximize"],
                    grad_scale=None,
                    found_inf=None,
                )

    def _make_plan(self):
        """Return the lists ``fast_step`` feeds the kernel, or None if it cannot."""
        if not fast_path_available() or not self._hooks_free():
            return None
        if not all(
            group["params"] and self._group_is_plain(group)
            for group in self.param_groups
        ):
            return None
        groups = []
        for group in self.param_groups:
            params = list(group["params"])
            first = params[0]
            if any(p.grad is None for p in params):
                return None
            if any(not self.state.get(p) for p in params):
                # Adam's own lazy state creation (what step() would do first),
                # including its checks of device and dtype for the fused kernel.
                self._init_group(group, [], [], [], [], [], [])
            states = [self.state.get(p) for p in params]
            if any(
                not state
                or p.device != first.device
                or p.dtype != first.dtype
                or p.is_complex()
                or p.is_sparse
                for p, state in zip(params, states)
            ):
                return None
            counter, step_views = _step_counter(states)
            groups.append(
                (
                    group,
                    params,
                    [s["exp_avg"] for s in states],
                    [s["exp_avg_sq"] for s in states],
                    step_views,
                    counter,
                )
            )
        return {
            "groups": groups,
            "param_groups": self.param_groups,
            "n_groups": len(self.param_groups),
            "group_params": [(g["params"], len(g["params"])) for g in self.param_groups],
            "state": self.state,
        }

    def _plan_is_current(self, plan):
        if (
            plan["param_groups"] is not self.param_groups
            or plan["n_groups"] != len(self.param_groups)
            or plan["state"] is not self.state
            or not self._hooks_free()
        ):
            return False
        for (params, n), group in zip(plan["group_params"], self.param_groups):
            if group["params"] is not params or len(params) != n:
                return False
            if not self._group_is_plain(group):
                return False
        return True

    def _hooks_free(self):
        return not (
            self._optimizer_step_pre_hooks
            or self._optimizer_step_post_hooks
            or _GLOBAL_PRE_HOOKS
            or _GLOBAL_POST_HOOKS
            or getattr(self, "grad_scale", None) is not None
            or getattr(self, "found_inf", None) is not None
        )

    @staticmethod
    def _group_is_plain(group):
        beta1, beta2 = group["betas"]
        return (
            group.get("fused") is True
            and not group["amsgrad"]
            and not group["capturable"]
            and not group["differentiable"]
            and not group.get("decoupled_weight_decay", False)
            and all(
                isinstance(v, (float, int))
                for v in (group["lr"], beta1, beta2, group["eps"], group["weight_decay"])
            )
        )



def _step_counter(states):
    """Return ``(counter, views)``: one 1-D tensor holding every parameter's
    step count, and its elements, which become the states' ``"step"``.

    torch keeps one 0-d step tensor per parameter and advances them with
    ``_foreach_add_``, which on the CPU is a loop of small adds (about 30
    microseconds a step for 14 parameters). As views of one tensor the
    counts are advanced by a single ``add_``, with the same values; each
    state still holds its own 0-d tensor (torch's ``step``, ``state_dict``
    and ``load_state_dict`` see no difference). Counts already gathered
    into such a tensor by an earlier plan are kept as they are; counts of
    mixed dtypes or devices are left alone (``counter`` is then None).
    """
    steps = [state["step"] for state in states]
    first = steps[0]
    if not all(
        isinstance(s, torch.Tensor) and s.dim() == 0 and s.dtype == first.dtype
        and s.device == first.device and not s.requires_grad
        for s in steps
    ):
        return None, steps  # left as they are: advanced by _foreach_add_
    base = first._base
    if (
        base is not None and base.dim() == 1 and len(base) == len(steps)
        and all(s._base is base and s.storage_offset() - base.storage_offset() == i
                for i, s in enumerate(steps))
    ):
        return base, steps
    counter = torch.stack([s.detach() for s in steps])
    views = list(counter.unbind())
    for state, view in zip(states, views):
        state["step"] = view
    return counter, views


def _decorated_adam_step():
    """``torch.optim.Adam.step`` with its decorators, without the profiler
    wrapper that ``Optimizer`` adds to a class's ``step`` (which
    ``FusedAdam.step`` already has)."""
    step = torch.optim.Adam.step
    if getattr(step, "hooked", False):
        step = step.__wrapped__
    return step
