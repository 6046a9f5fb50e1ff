"""
=====================================================================
Unsupervised pretraining, then a classifier on few labels
=====================================================================

Labels are often scarce while unlabelled data are plentiful. An autoencoder
fitted on all the (unlabelled) training digits gives codes that a simple
classifier can learn from with few labels; the pretrained encoder can then
be fine-tuned with those labels as the first part of a neural network.
:meth:`~sklearn_ae.AutoencoderTransformer.encoder_module` exports the fitted
encoder as a torch module that maps raw input to codes (the internal
scaling included), ready for a skorch ``NeuralNetClassifier`` or any torch
model.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier

from sklearn_ae import AutoencoderTransformer

warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
# Only 50 of the training digits keep their label.
labelled = np.random.RandomState(0).choice(len(X_train), 50, replace=False)
X_few, y_few = X_train[labelled], y_train[labelled]

# %%
# Codes from unlabelled data, then a logistic regression on 50 labels
# -------------------------------------------------------------------
# The autoencoder and PCA are fitted on every training digit (without
# labels); the logistic regression on the 50 labelled ones.
ae = AutoencoderTransformer(n_components=16, hidden_layer_sizes=(64,), learning_rate=3e-3,
                            batch_size=64, max_iter=60, random_state=0).fit(X_train)
pca = PCA(n_components=16, random_state=0).fit(X_train)
classifiers = {
    "pixels": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    "PCA codes": LogisticRegression(max_iter=1000),
    "autoencoder codes": LogisticRegression(max_iter=1000),
}
features = {"pixels": lambda A: A, "PCA codes": pca.transform, "autoencoder codes": ae.transform}
accuracies = {}
for name, clf in classifiers.items():
    clf.fit(features[name](X_few), y_few)
    accuracy = accuracies[f"logistic regression,\n{name}"] = clf.score(features[name](X_test), y_test)
    print(f"logistic regression on {name:18s} test accuracy {accuracy:.3f}")

# %%
# Fine-tuning the pretrained encoder
# ----------------------------------
# The exported encoder is a copy of the fitted one (training it leaves
# ``ae`` unchanged), with ``ae``'s scaling held as buffers. A linear layer
# on top makes a classifier, which skorch trains on the 50 labelled digits,
# encoder included.
torch.manual_seed(0)
model = torch.nn.Sequential(ae.encoder_module(), torch.nn.Linear(16, 10))
net = NeuralNetClassifier(model, criterion=torch.nn.CrossEntropyLoss,
                          optimizer=torch.optim.Adam, lr=1e-3, max_epochs=100,
                          batch_size=50, train_split=None, verbose=0)
net.fit(X_few, y_few)
accuracies["fine-tuned\npretrained encoder"] = net.score(X_test, y_test)
print(f"fine-tuned pretrained encoder          test accuracy {net.score(X_test, y_test):.3f}")

# The same network from torch's default initialisation, for comparison.
torch.manual_seed(0)
random_encoder = ae.encoder_module()
for layer in random_encoder.modules():
    if isinstance(layer, torch.nn.Linear):
        layer.reset_parameters()
net_scratch = NeuralNetClassifier(
    torch.nn.Sequential(random_encoder, torch.nn.Linear(16, 10)),
    criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=1e-3,
    max_epochs=100, batch_size=50, train_split=None, verbose=0,
).fit(X_few, y_few)
scratch_accuracy = net_scratch.score(X_test, y_test)
accuracies["same network,\nnot pretrained"] = scratch_accuracy
print(f"same network, not pretrained           test accuracy {scratch_accuracy:.3f}")

# %%
# Test accuracy of each classifier trained on the same 50 labelled digits:
fig, ax = plt.subplots(figsize=(7, 3.6))
names = list(accuracies)
ax.barh(names, [accuracies[n] for n in names], color=["0.6", "C0", "C1", "C2", "C3"])
for i, n in enumerate(names):
    ax.text(accuracies[n] + 0.005, i, f"{accuracies[n]:.3f}", va="center", fontsize=8)
ax.invert_yaxis()
ax.set_xlim(0, 1.05)
ax.set_xlabel("test accuracy (540 digits)")
ax.set_title("50 labels: classifiers with and without unsupervised pretraining")
ax.tick_params(axis="y", labelsize=8)
fig.tight_layout()
plt.show()

# %%
# Pretraining is not a sure win. Here the codes learned without labels make
# a linear classifier on 50 labels better than one on the pixels, and PCA's
# codes do at least as well as the autoencoder's: on 8x8 digits a linear
# code already captures what the classifier needs. The fine-tuned
# pretrained encoder and the same network trained without pretraining end
# within a few points of each other, in either order: on this split and
# three others (``random_state`` 1, 2 and 3 in place of 0 throughout) the
# pretrained one scored 0.037, -0.011, 0.016 and -0.016 above the other,
# and both stayed below the logistic regression on the autoencoder's codes.
# The numbers above vary with the split and the labelled digits: rerun
# with other values of ``random_state`` before drawing conclusions for
# your data.
