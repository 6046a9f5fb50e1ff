"""
=====================================================
Logging training to TensorBoard, and reading it back
=====================================================

The estimators accept skorch's callbacks through ``callbacks=[...]``, so
skorch's ``TensorBoard`` callback logs the training and validation loss of
every epoch to a ``torch.utils.tensorboard.SummaryWriter``. ``tensorboard
--logdir DIR`` shows the run in a browser; here we read the logged scalars
back with TensorBoard's ``EventAccumulator`` and draw the loss curves with
matplotlib, next to the estimator's own ``loss_curve_`` to show they are the
same numbers.
"""

# %%
import tempfile
import warnings

import matplotlib.pyplot as plt
import numpy as np
from skorch.callbacks import TensorBoard
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from sklearn_ae import AutoencoderTransformer

warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, _ = load_digits(return_X_y=True)
X = X / 16

logdir = tempfile.mkdtemp(prefix="sklearn_ae_tensorboard_")
writer = SummaryWriter(logdir)
ae = AutoencoderTransformer(
    n_components=8,
    hidden_layer_sizes=(32,),
    max_iter=40,
    n_iter_no_change=40,  # train all 40 epochs, so the whole curve is logged
    random_state=0,
    callbacks=[TensorBoard(writer)],
).fit(X)
writer.flush()
writer.close()

# %%
# Reading the event file back
# ---------------------------
# skorch's callback writes the scalars ``Loss/train_loss`` and
# ``Loss/valid_loss`` (the held-out validation rows that early stopping
# watches), one point per epoch, numbered from 1.
events = EventAccumulator(logdir)
events.Reload()
print("scalar tags:", events.Tags()["scalars"])
train = events.Scalars("Loss/train_loss")
valid = events.Scalars("Loss/valid_loss")
train_steps = np.array([e.step for e in train])
train_loss = np.array([e.value for e in train])
valid_steps = np.array([e.step for e in valid])
valid_loss = np.array([e.value for e in valid])
print(f"{len(train)} epochs logged; largest difference from loss_curve_: "
      f"{np.max(np.abs(train_loss - np.asarray(ae.loss_curve_))):.2g}")

fig, ax = plt.subplots(figsize=(6, 3.6))
ax.plot(train_steps, train_loss, label="Loss/train_loss (TensorBoard)")
ax.plot(valid_steps, valid_loss, label="Loss/valid_loss (TensorBoard)")
ax.plot(np.arange(1, len(ae.loss_curve_) + 1), ae.loss_curve_, "k:",
        label="ae.loss_curve_")
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("loss")
ax.set_title("Training logged to TensorBoard, read back")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# The curves read from the event file are the ones the estimator records
# (TensorBoard stores 32-bit floats, hence a tiny difference): the
# training loss falls from the PCA start, and the validation loss says how
# much of that carries over to rows the network does not train on. To
# watch a run live, point ``tensorboard --logdir`` at the writer's directory.
