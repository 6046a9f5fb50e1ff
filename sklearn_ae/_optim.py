"""Adam with a leaner step for small networks.

On a small tabular network, ``torch.optim.Adam(fused=True).step()`` spends
more time in Python bookkeeping (profiler records, hook loops, per-parameter
state look-ups, regrouping tensors by device) than in its fused kernel. The
training engine calls :meth:`FusedAdam.fast_step` instead, which feeds the
same kernel from lists built once.

That kernel (``torch._fused_adam_``) and the registries of global optimizer
hooks are private torch APIs (tested with torch 2.13). Where a torch release
lacks any of them, ``fast_step`` is plain ``step`` and nothing else changes.
"""

import torch
from torch.optim import optimizer as _torch_optimizer

_FUSED_ADAM = getattr(torch, "_fused_adam_", None)
_GLOBAL_PRE_HOOKS = getattr(_torch_optimizer, "_global_optimizer_pre_hooks", None)
_GLOBAL_POST_HOOKS = getattr(_torch_optimizer, "_global_optimizer_post_hooks", None)


def fast_path_available():
    """Whether this torch has the private APIs :meth:`FusedAdam.fast_step` uses."""
    return (
        _FUSED_ADAM is not None
        and _GLOBAL_PRE_HOOKS is not None
        and _GLOBAL_POST_HOOKS is not None
    )


class FusedAdam(torch.optim.Adam):
    """``torch.optim.Adam`` whose :meth:`fast_step` skips per-step bookkeeping.

    ``step`` is torch's own. ``fast_step`` makes the same update, bit for
    bit, by calling the fused kernel that ``step`` calls, with the state
    lists built on the first call. It falls back to ``step`` for anything it
    does not cover: ``fused`` off, ``amsgrad``, ``capturable``,
    ``differentiable``, decoupled weight decay, tensor hyperparameters, step
    hooks, a gradient scaler, a parameter without a gradient, parameters of
    mixed devices or dtypes, parameter groups or state changed since the
    lists were built (``add_param_group``, ``load_state_dict``), and a torch
    without the private APIs it calls (:func:`fast_path_available`).
    """

    def fast_step(self):
        """Make one optimisation step; return nothing."""
        plan = getattr(self, "_fast_plan", None)
        if plan is None or not self._plan_is_current(plan):
            self.step()
            self._fast_plan = self._make_plan()
            return
        grads = [[p.grad for p in entry[1]] for entry in plan["groups"]]
        if any(g is None for group_grads in grads for g in group_grads):
            # torch's step skips such parameters (and their step counts).
            self.step()
            return
        with torch.no_grad():
            for (group, params, exp_avgs, exp_avg_sqs, steps), group_grads in zip(
                plan["groups"], grads
            ):
                beta1, beta2 = group["betas"]
                torch._foreach_add_(steps, 1)
                _FUSED_ADAM(
                    params,
                    group_grads,
                    exp_avgs,
                    exp_avg_sqs,
                    [],
                    steps,
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
        groups = []
        for group in self.param_groups:
            params = list(group["params"])
            if not params or not self._group_is_plain(group):
                return None
            first = params[0]
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
            groups.append(
                (
                    group,
                    params,
                    [s["exp_avg"] for s in states],
                    [s["exp_avg_sq"] for s in states],
                    [s["step"] for s in states],
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

