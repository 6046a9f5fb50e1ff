"""
=====================================================================
A sequence (LSTM) autoencoder finds anomalous windows of a signal
=====================================================================

To find unusual stretches of a time series, cut it into overlapping
windows, train an autoencoder on windows of normal behaviour, and rank new
windows by how badly they are reconstructed. With ``input_shape=(n_timesteps,
n_channels)`` the estimator builds a sequence-to-sequence LSTM autoencoder:
an LSTM encodes the window into a code, and the code, repeated at every
step, drives an LSTM decoder. Windows stay flat rows of ``X``, stored
time-major (all channels of step 0, then of step 1, ...).
"""

# %%
# A two-channel signal with three anomalies
# -----------------------------------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.exceptions import ConvergenceWarning

from sklearn_ae import AutoencoderTransformer

warnings.filterwarnings("ignore", category=ConvergenceWarning)

rng = np.random.RandomState(0)
t = np.arange(3000)
signal = np.c_[np.sin(2 * np.pi * t / 30), np.sin(2 * np.pi * t / 30 + 1) ** 3]
signal += 0.05 * rng.randn(*signal.shape)
train, test = signal[:2000], signal[2000:].copy()
anomalies = {"spike": (300, 303), "flat line": (550, 580), "faster cycle": (800, 860)}
test[300:303, 0] += 1.5
test[550:580] = test[550]
test[800:860] = np.c_[np.sin(2 * np.pi * t[800:860] / 12),
                      np.sin(2 * np.pi * t[800:860] / 12 + 1) ** 3]

n_timesteps, n_channels = 24, 2


def windows(series, step):
    """Overlapping windows as flat, time-major rows: (n_windows, T * F)."""
    view = sliding_window_view(series, n_timesteps, axis=0)[::step]  # (n, F, T)
    return view.transpose(0, 2, 1).reshape(len(view), -1)


X_train = windows(train, step=4)
X_test = windows(test, step=1)
print("training windows:", X_train.shape, "test windows:", X_test.shape)

# %%
# The LSTM autoencoder
# --------------------
ae = AutoencoderTransformer(
    n_components=8,
    input_shape=(n_timesteps, n_channels),
    hidden_layer_sizes=(32,),
    batch_size=32,
    max_iter=30,
    learning_rate=1e-2,
    random_state=0,
).fit(X_train)

# Like the dense network, the LSTM autoencoder starts at PCA's solution (a
# linear path beside the LSTMs, initialised to PCA of the windows). On this
# smooth signal PCA's 8 components already reconstruct normal windows down
# to the noise, and early stopping found no epoch that beat the start: the
# ranking below is that of the PCA the network contains. (Trained without
# early stopping, which stopped it after 14 epochs on the training loss, the
# LSTM flags the same windows of each anomaly and 36 instead of 45 of the
# normal ones.)
#
# Outlyingness of a window: its reconstruction error. A window is flagged
# when it is reconstructed worse than 99 % of the training windows.
train_error = -ae.score_samples(X_train)
test_error = -ae.score_samples(X_test)
threshold = np.percentile(train_error, 99)
flagged = np.flatnonzero(test_error > threshold)
for name, (start, stop) in anomalies.items():
    # windows that overlap the anomaly
    hit = (flagged + n_timesteps > start) & (flagged < stop)
    print(f"{name:12s} steps {start}-{stop}: {hit.sum()} flagged windows overlap it")
overlaps_any = np.zeros(len(X_test), bool)
for start, stop in anomalies.values():
    overlaps_any[max(0, start - n_timesteps + 1):stop] = True
print(f"flagged windows that overlap no anomaly: {(~overlaps_any[flagged]).sum()} "
      f"of {len(X_test) - overlaps_any.sum()} such windows")

# %%
# The figure shows the test part of the signal with the three anomalies
# shaded (top) and each window's reconstruction error, drawn at the window's
# last step, with the 99th percentile of the training windows' errors
# (bottom).
fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
ax1.plot(test[:, 0], lw=0.8, label="channel 0")
ax1.plot(test[:, 1], lw=0.8, label="channel 1")
ax2.plot(np.arange(len(test_error)) + n_timesteps - 1, test_error, color="C3", lw=0.8)
ax2.axhline(threshold, color="k", ls="--", label="99th percentile of training windows")
for ax in (ax1, ax2):
    for name, (start, stop) in anomalies.items():
        ax.axvspan(start, stop, color="0.85", zorder=0)
for name, (start, stop) in anomalies.items():
    ax1.text((start + stop) / 2, 1.6, name, ha="center", fontsize=8)
ax1.set_ylim(-1.6, 2.0)
ax1.legend(loc="lower left", fontsize=8, ncol=2)
ax2.set_yscale("log")
ax2.set_ylabel("reconstruction error")
ax2.set_xlabel("time step of the test part")
ax2.legend(loc="upper left", fontsize=8)
fig.tight_layout()
plt.show()
