"""skorch callbacks used by the estimators."""

from skorch.callbacks import Callback


class EpochProgressBar(Callback):
    """A tqdm bar that advances once per epoch and shows the latest losses.

    skorch's own ``ProgressBar`` advances per batch from per-batch history,
    which the engine does not record (it reads losses once per epoch).
    """

    def __init__(self, keys=("train_loss", "valid_loss")):
        self.keys = keys

    def on_train_begin(self, net, **kwargs):
        from tqdm.auto import tqdm

        self.bar_ = tqdm(total=net.max_epochs, unit="epoch", leave=False)

    def on_epoch_end(self, net, **kwargs):
        last = net.history[-1]
        self.bar_.set_postfix(
            {key: f"{last[key]:.4g}" for key in self.keys if key in last},
            refresh=False,
        )
        self.bar_.update()

    def on_train_end(self, net, **kwargs):
        self.bar_.close()
        del self.bar_


class KLWarmup(Callback):
    """Raise the criterion's ``kl_weight`` linearly from 0 to 1 over the first epochs.

    At epoch ``e`` (counted from 1 over the net's whole history, so a warm
    start continues where it stopped) the weight is ``min(1, e / n_epochs)``;
    ``n_epochs=0`` keeps it at 1. Annealing the KL term lets the decoder learn
    to use z before the prior pulls the posterior onto it (Bowman et al.,
    2016), which guards against posterior collapse.
    """

    def __init__(self, n_epochs):
        self.n_epochs = n_epochs

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history)  # skorch has already opened this epoch's row
        if self.n_epochs <= 0:
            weight = 1.0
        else:
            weight = min(1.0, epoch / self.n_epochs)
        net.criterion_.kl_weight = weight
        net.history.record("kl_weight", weight)
