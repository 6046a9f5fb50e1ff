"""
====================================================
Greedy layer-wise pretraining, at equal total epochs
====================================================

Before end-to-end training was easy, deep autoencoders were trained one
layer at a time (Hinton and Salakhutdinov, 2006; *Hands-On Machine
Learning*'s "training one autoencoder at a time"): each encoder layer and its
mirror decoder layer form a shallow autoencoder trained on the codes of the
layers below, then the whole stack is fine-tuned. With
``layerwise_pretraining=True`` the estimator does this. Is it worth its
epochs? We give a network trained from scratch the same total number of
epochs as pretraining plus fine-tuning, and compare the loss curves.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_ae import AutoencoderTransformer, neg_reconstruction_error

warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, _ = load_digits(return_X_y=True)
X = X / 16
X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)

hidden = (64, 32, 16)
n_layers = len(hidden) + 1  # each hidden layer and the code layer
pretraining_epochs, finetuning_epochs = 10, 30
total_epochs = n_layers * pretraining_epochs + finetuning_epochs
common = dict(
    n_components=8,
    hidden_layer_sizes=hidden,
    activation="tanh",
    standardize=False,
    learning_rate=1e-3,
    batch_size=64,
    tol=0.0,
    random_state=0,
)
pretrained = AutoencoderTransformer(
    layerwise_pretraining=True,
    pretraining_max_iter=pretraining_epochs,
    max_iter=finetuning_epochs,
    n_iter_no_change=finetuning_epochs,
    **common,
).fit(X_train)
scratch = AutoencoderTransformer(
    max_iter=total_epochs, n_iter_no_change=total_epochs, **common
).fit(X_train)

for name, model in [("pretrained + fine-tuned", pretrained), ("from scratch", scratch)]:
    print(f"{name:24s} {model.n_iter_:3d} end-to-end epochs, held-out MSE "
          f"{-neg_reconstruction_error(model, X_test):.4f}")

# %%
# Loss curves
# -----------
# Left: ``pretraining_loss_curves_``, one curve per shallow autoencoder (the
# first reconstructs pixels, the deeper ones reconstruct the codes of the
# layer below, so their scales differ). Right: the end-to-end training loss
# (``loss_curve_``) against the total number of epochs spent so far; the
# pretrained network's curve starts after its ``n_layers * 10`` pretraining
# epochs.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
for depth, curve in enumerate(pretrained.pretraining_loss_curves_):
    ax1.plot(np.arange(1, len(curve) + 1), curve, label=f"layer {depth + 1}")
ax1.set_yscale("log")
ax1.set_xlabel("epoch of the shallow autoencoder")
ax1.set_ylabel("training loss")
ax1.set_title("Pretraining, one layer at a time")
ax1.legend(fontsize=8)

offset = n_layers * pretraining_epochs
ax2.plot(np.arange(1, len(scratch.loss_curve_) + 1), scratch.loss_curve_, label="from scratch")
ax2.plot(offset + np.arange(1, len(pretrained.loss_curve_) + 1), pretrained.loss_curve_,
         label="fine-tuning after pretraining")
ax2.axvline(offset, color="0.6", ls=":")
ax2.set_yscale("log")
ax2.set_xlabel("total epochs (pretraining + end-to-end)")
ax2.set_ylabel("training MSE")
ax2.set_title("End-to-end training")
ax2.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# An epoch of a shallow autoencoder costs less than an epoch of the whole
# network, so equal epochs is not equal time. The printed held-out errors
# say which schedule ended lower on this data; ``benchmarks/layerwise_pretraining.md``
# compares them on more data sets and seeds.
