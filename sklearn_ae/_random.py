"""Random draws of a fit from its own ``torch.Generator``, one per thread.

torch's default generator is process-wide: seeding it in ``fit`` (or forking
it with ``torch.random.fork_rng``) makes fits that overlap in several Python
threads draw from, and leave behind, each other's state. Instead, a fit makes
its own generators current for its thread (:func:`fit_generators`), and every
random draw of training takes the current one: shuffling
(``TensorData.batches``), dropout (:class:`Dropout`, and the ensemble's
``FastDropout``), input corruption and the variational autoencoder's latent
draws (:func:`randn_like`, :func:`rand_like`). Outside such a block, these
draw from torch's default generator, as plain torch modules do.

Weight initialisation happens in the modules' constructors, which draw from
torch's default generator; :func:`seeded_global_rng` builds them under a
process-wide lock with that generator forked and seeded, which is fast and
leaves its state as it was.

Nothing here is stored on a module: the networks stay picklable.
"""

import threading
from contextlib import contextmanager

import torch
from torch import nn

_LOCAL = threading.local()
# Guards every block that seeds torch's process-wide generator: two blocks
# that overlapped would restore each other's state.
_GLOBAL_RNG_LOCK = threading.RLock()


class _FitGenerators:
    """Generators of one fit, one per device type, created on first use."""

    def __init__(self, seed):
        self.seed = seed
        self.by_device = {}

    def get(self, device):
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        generator = self.by_device.get(device)
        if generator is None:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed)
            self.by_device[device] = generator
        return generator


def current_generator(device):
    """Return the current fit's generator for ``device``, or None outside a fit."""
    state = getattr(_LOCAL, "generators", None)
    return None if state is None else state.get(device)


@contextmanager
def fit_generators(seed):
    """Make generators seeded with ``seed`` current for this thread in the block.

    Blocks nest (the outer fit's generators come back at exit) and never
    touch torch's default generator.
    """
    previous = getattr(_LOCAL, "generators", None)
    _LOCAL.generators = _FitGenerators(seed)
    try:
        yield
    finally:
        _LOCAL.generators = previous


@contextmanager
def seeded_global_rng(seed, device):
    """Seed torch's default generators for the block, then restore them.

    Holds a process-wide lock, so that blocks in several threads do not
    interleave: use it for short work (building modules), or for training
    modules whose draws this module cannot route (see :func:`draws_globally`).
    """
    device = torch.device(device)
    devices = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def randn_like(x):
    """``torch.randn_like(x)`` from the current fit's generator."""
    generator = current_generator(x.device)
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def rand_like(x):
    """``torch.rand_like(x)`` from the current fit's generator."""
    generator = current_generator(x.device)
    if generator is None:
        return torch.rand_like(x)
    return torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)


class Dropout(nn.Dropout):
    """:class:`torch.nn.Dropout` whose mask comes from the current fit's generator.

    The same computation as ``nn.Dropout`` (a Bernoulli mask, survivors
    scaled by ``1 / (1 - p)``, the identity in eval mode); outside a fit it
    is ``nn.Dropout`` itself.
    """

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        generator = current_generator(x.device)
        if generator is None:
            return super().forward(x)
        if self.p == 1:
            return x * 0.0
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=generator)
        return x * keep.div_(1 - self.p)


# Modules of ours and of torch.nn known not to draw random numbers in
# forward, other than the dropout layers above and what routes through
# randn_like/rand_like.
_ROUTED_PREFIXES = ("sklearn_ae.", "torch.nn.")
_GLOBAL_DROPOUTS = (nn.modules.dropout._DropoutNd, nn.RReLU)


def draws_globally(module):
    """Whether training ``module`` may draw from torch's default generator.

    True when it holds a torch layer that draws from it (``nn.Dropout``,
    ``nn.RReLU``...) or a module defined outside ``torch.nn`` and this package
    (a user's network, which may call ``torch.randn`` itself).
    """
    for sub in module.modules():
        if isinstance(sub, _GLOBAL_DROPOUTS) and not isinstance(sub, Dropout):
            return True
        if not type(sub).__module__.startswith(_ROUTED_PREFIXES):
            return True
    return False


__all__ = [
    "Dropout",
    "current_generator",
    "draws_globally",
    "fit_generators",
    "rand_like",
    "randn_like",
    "seeded_global_rng",
]
