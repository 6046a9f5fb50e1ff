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
