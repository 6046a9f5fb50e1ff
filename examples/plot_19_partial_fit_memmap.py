"""
=====================================================================
Training in chunks from a memory-mapped file with ``partial_fit``
=====================================================================

Data too large for memory can be written once to a file and read back as a
``numpy.memmap``; :meth:`~sklearn_ae.AutoencoderTransformer.partial_fit`
then trains one pass over each chunk, updating the internal scaling from
every chunk (running mean and variance). Here the digits stand in for a
large file: 10 chunks, 15 passes, against ``fit`` on the whole array with
the same number of passes and optimizer steps, scored by the held-out
reconstruction error. Dask's ``Incremental`` wrapper does the same loop over
the blocks of a dask array (see the user guide's page on scaling out).
"""

# %%
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from sklearn_ae import AutoencoderTransformer

warnings.filterwarnings("ignore", category=ConvergenceWarning)

X = load_digits().data.astype(np.float32)
X = X[np.random.RandomState(0).permutation(len(X))]
X_train, X_test = X[:1600], X[1600:]

folder = tempfile.TemporaryDirectory()
path = Path(folder.name) / "digits.f32"
on_disk = np.memmap(path, dtype=np.float32, mode="w+", shape=X_train.shape)
on_disk[:] = X_train
on_disk.flush()
X_file = np.memmap(path, dtype=np.float32, mode="r", shape=X_train.shape)


def heldout_error(model):
    return np.mean((model.inverse_transform(model.transform(X_test)) - X_test) ** 2)


params = dict(n_components=8, batch_size=32, learning_rate=3e-3, random_state=0)
n_passes = 15
whole = AutoencoderTransformer(max_iter=n_passes, early_stopping=False, **params)
whole.fit(X_file)  # streamed from the file, batch by batch

chunked = AutoencoderTransformer(**params)
curve = []
for _ in range(n_passes):
    for start in range(0, len(X_file), 160):
        chunked.partial_fit(X_file[start : start + 160])
    curve.append(heldout_error(chunked))

print(f"held-out error, fit: {heldout_error(whole):.3f}, "
      f"partial_fit over 10 chunks: {heldout_error(chunked):.3f}")
print(f"rows seen by the running scaling: {chunked.n_samples_seen_}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(range(1, n_passes + 1), curve, marker="o", label="partial_fit, 10 chunks")
ax.axhline(heldout_error(whole), color="k", linestyle="--", label="fit, same passes")
ax.set_xlabel("passes over the data")
ax.set_ylabel("held-out squared error")
ax.legend()
fig.tight_layout()
plt.show()
folder.cleanup()
