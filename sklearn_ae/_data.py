"""Rows of a data matrix as torch batches (float32 by default), standardized on the way.

Dense training data is converted and moved to the device once when it fits
there (:func:`fits_on_device`); batches are then cut from it by index, one
gather per shuffled batch. Data that does not fit, and sparse data, stay on
the host and are moved one batch at a time.
"""

import operator

import numpy as np
import scipy.sparse as sp
import torch
from skorch.dataset import Dataset

from ._random import current_generator

# Rows per float64 block when computing the scaling of a dense matrix: the
# blocks stay in cache, and X is never copied whole to float64 (a 60,000 x
# 784 float32 matrix would need 376 MB and a third of a second).
_SCALING_ROWS = 512

# Rows per block when all rows of data kept on the host are gathered
# (TensorData.all_rows): what one block takes on the device.
_BLOCK_ROWS = 8192
# Values per float64 block when wider rows are standardized before narrowing
# (8 MiB of temporaries).
_NARROWING_VALUES = 2**20

# Largest share of a GPU's free memory the training set may take and still be
# kept there whole: the rest is left for the network, its gradients, the
# optimizer's state and the activations of a batch.
RESIDENT_SHARE = 0.5


def fits_on_device(nbytes, device):
    """Whether ``nbytes`` of training data may be kept resident on ``device``.

    Always True on the CPU, where the data is in host memory anyway. On a GPU,
    True when ``nbytes`` is at most :data:`RESIDENT_SHARE` of its free memory.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= RESIDENT_SHARE * free


# The scale floor, as a fraction (see floored_scale).
SCALE_FLOOR = 0.1

# Rows (evenly spaced) whose per-feature median is a feature's reference
# value: its most common value when most rows share one (see floored_scale).
_REFERENCE_ROWS = 257


def feature_scaling(X, rule="own"):
    """Return per-feature ``(mean, scale)`` for z-scoring ``X`` (dense or sparse).

    Moments are accumulated in float64. ``scale`` is each feature's standard
    deviation with the floor of ``rule`` (see :func:`floored_scale`), which
    keeps a feature that is almost constant in the training data (a border
    pixel that is nearly always 0, a rare binary flag) from getting a tiny
    scale, under which an ordinary value of the feature on new data turns
    into a z-score of hundreds and dominates a squared error.
    """
    return RunningScaling(X.shape[1], rule=rule).update(X).scaling()


def floored_scale(mean, var, rule="own", *, reference=None, n_off=None, n_samples=None):
    """Return the z-scoring scale of features with ``mean`` and ``var``.

    ``rule='own'``: each feature's standard deviation, floored at the
    smaller of two floors, :data:`SCALE_FLOOR` (0.1) times
    (a) the root mean square of its deviations from its ``reference`` value
    (its median, so its most common value when most rows share one) over
    the ``n_off`` of its ``n_samples`` rows that differ from it, in its own
    units, and (b) the median standard deviation of the non-constant
    features. (a) binds only on a feature whose rows nearly all share one
    value (fewer than 2% differ: a feature whose mean is within one standard
    deviation of its median, as every feature's is, needs ``n_off /
    n_samples < 2 x 0.1**2``), where it caps a rare value's z-score at 10;
    so every other feature is z-scored exactly, whatever the units of the
    others. (b) keeps the floor from binding on data that are z-scored
    already (every spread then equals the median), where the internal
    scaling is then the identity. Constant features get 1 (as
    :class:`~sklearn.preprocessing.StandardScaler`), so they map to 0
    instead of NaN. Without ``reference`` (moments whose reference values
    were not recorded), the standard deviations alone.

    ``rule='median'``: the floor is 0.1 times the median standard deviation
    of the non-constant features, and constant features get the floor (or
    1). This floor depends on the units of the other features; it is the
    VAE's and the outlier detector's, which were tuned with it.
    """
    scale = np.sqrt(var)
    tiny = 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))
    varying = scale >= tiny
    if rule == "median":
        floor = SCALE_FLOOR * np.median(scale[varying]) if varying.any() else 0.0
        scale[~varying] = floor if floor > 0 else 1.0
        np.maximum(scale, floor, out=scale)
        return scale
    scale[~varying] = 1.0
    if reference is not None and varying.any():
        typical = SCALE_FLOOR * np.median(scale[varying])
        off = varying & (n_off > 0)
        spread = n_samples * (var[off] + (mean[off] - reference[off]) ** 2) / n_off[off]
        floor = np.minimum(SCALE_FLOOR * np.sqrt(spread), typical)
        scale[off] = np.maximum(scale[off], floor)
    return scale


# A feature is a candidate for the floor (its rows off the reference value
# are counted) when at least this share of the reference rows equal it; the
# floor binds only below 2% off, so for the others all rows count as off.
_CANDIDATE_SHARE = 0.9


def _reference_values(X):
    """Per-feature median of up to ``_REFERENCE_ROWS`` evenly spaced rows,
    and which features are floor candidates (``_CANDIDATE_SHARE`` of those
    rows equal to the median)."""
    n = X.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, _REFERENCE_ROWS)).round().astype(np.intp))
    if sp.issparse(X):
        sample = sp.csr_matrix(X)[rows].toarray()
    else:
        sample = np.asarray(X[rows], dtype=np.float64)
    sample = sample.astype(np.float64, copy=False)
    reference = np.median(sample, axis=0)
    share = np.count_nonzero(sample == reference, axis=0) / len(sample)
    return reference, np.flatnonzero(share >= _CANDIDATE_SHARE)


def _sparse_count_equal(X, values):
    """Per-column count of the rows of sparse ``X`` equal to ``values``."""
    X = sp.csc_matrix(X)
    n_rows, n_cols = X.shape
    stored = np.diff(X.indptr)
    column = np.repeat(np.arange(n_cols), stored)
    equal = np.bincount(column[X.data == values[column]], minlength=n_cols).astype(np.float64)
    return equal + np.where(values == 0, n_rows - stored, 0)


class RunningScaling:
    """Per-feature mean and variance updated chunk by chunk, for ``partial_fit``.

    As :class:`~sklearn.preprocessing.StandardScaler`'s ``partial_fit``: the
    moments of the rows seen so far, merged across chunks with Chan et al.'s
    pairwise update (in float64, blockwise within a chunk, so a memmapped
    chunk is read a block at a time), exact whatever the chunking. With
    ``rule='own'`` it also counts the rows that differ from each feature's
    reference value (the first chunk's median). :meth:`scaling` applies
    :func:`floored_scale`'s ``rule`` to them.
    """

    def __init__(self, n_features, rule="own"):
        self.rule = rule
        self.n_samples_seen = 0
        self.mean = np.zeros(n_features)
        self.m2 = np.zeros(n_features)
        self.reference = None
        self.candidates = None
        self.n_off = np.zeros(n_features)
        self._single_var = None

    def update(self, X):
        """Add the rows of ``X`` (dense or sparse) to the moments."""
        # Moments that overflow float64 are reported by scaling(), by name.
        with np.errstate(over="ignore", invalid="ignore"):
            return self._update(X)

    def _update(self, X):
        n_block = X.shape[0]
        if n_block == 0:
            return self
        if self.rule == "own" and self.reference is None:
            self.reference, self.candidates = _reference_values(X)
            # rows seen before the reference was set (moments rebuilt from
            # a fitted scale) count as differing from it: no floor from them
            self.n_off = np.full(len(self.mean), float(self.n_samples_seen))
        counted = None if self.reference is None else self.candidates
        if sp.issparse(X):
            from sklearn.utils.sparsefuncs import mean_variance_axis

            block_mean, block_var = mean_variance_axis(
                sp.csr_matrix(X, dtype=np.float64), axis=0
            )
            if counted is not None:
                n_equal = _sparse_count_equal(
                    sp.csc_matrix(X)[:, counted], self.reference[counted]
                )
        else:
            block_mean, block_var, n_equal = _blockwise_mean_var(
                X, counted, None if counted is None else self.reference[counted]
            )
        if counted is not None:
            self.n_off += n_block  # the features that are not candidates: all off
            self.n_off[counted] -= n_equal
        count = self.n_samples_seen
        total = count + n_block
        delta = block_mean - self.mean
        self.mean = self.mean + delta * (n_block / total)
        self.m2 = self.m2 + block_var * n_block + delta**2 * (count * n_block / total)
        self.n_samples_seen = total
        # One chunk: its variance as computed, not m2 / n (which can differ
        # in the last bit), so that fit's scaling is the whole data's.
        self._single_var = block_var if count == 0 else None
        return self

    @property
    def var(self):
        """Population variance of the rows seen."""
        if self._single_var is not None:
            return self._single_var
        return self.m2 / max(self.n_samples_seen, 1)

    def scaling(self):
        """Return ``(mean, scale)`` of the rows seen, as :func:`feature_scaling`.

        Raises ValueError where a feature's variance overflows float64
        (values beyond about 1e154): no z-score can be computed for it."""
        bad = np.flatnonzero(~(np.isfinite(self.mean) & np.isfinite(self.var)))
        if len(bad) and self.n_samples_seen:
            raise ValueError(
                f"X has values too large to standardize: the variance of "
                f"feature(s) {bad[:5].tolist()}{' ...' if len(bad) > 5 else ''} "
                "overflows float64. Divide X by a constant (for example its "
                "largest absolute value) before fitting."
            )
        scale = floored_scale(
            self.mean, self.var, self.rule, reference=self.reference,
            n_off=self.n_off, n_samples=self.n_samples_seen,
        )
        return self.mean.copy(), scale


def _blockwise_mean_var(X, columns=None, values=None):
    """Mean and (population) variance of the columns of a dense ``X``, and
    the count of rows equal to ``values`` in ``columns`` (None without them).

    Two-pass moments within each float64 block, merged across blocks with
    Chan et al.'s pairwise update, so the result is as accurate as
    ``np.var`` on a float64 copy without making one.
    """
    n_features = X.shape[1]
    mean = np.zeros(n_features)
    m2 = np.zeros(n_features)
    n_equal = None if columns is None else np.zeros(len(columns))
    count = 0
    for start in range(0, X.shape[0], _SCALING_ROWS):
        # A float64 copy of the block (never a view of X), centred in place.
        block = np.array(X[start : start + _SCALING_ROWS], dtype=np.float64)
        n_block = block.shape[0]
        if n_equal is not None and len(columns):
            n_equal += np.count_nonzero(block[:, columns] == values, axis=0)
        block_mean = block.mean(axis=0)
        block -= block_mean
        block_m2 = np.einsum("ij,ij->j", block, block)
        total = count + n_block
        delta = block_mean - mean
        mean += delta * (n_block / total)
        m2 += block_m2 + delta**2 * (count * n_block / total)
        count = total
    if count == 0:
        nan = np.full(n_features, np.nan)
        return nan, nan.copy(), n_equal
    return mean, m2 / count, n_equal


def is_memory_mapped(X):
    """Whether dense ``X`` (or the array it views) is a memory-mapped file
    (``numpy.memmap``, ``numpy.load(..., mmap_mode=...)``): such data is
    streamed from the file a batch at a time, never loaded whole."""
    import mmap

    obj = X
    while obj is not None:
        if isinstance(obj, (np.memmap, mmap.mmap)):
            return True
        obj = getattr(obj, "base", None)
    return False


class _RowSubset:
    """Rows ``positions`` of a memory-mapped array, read only when indexed
    (a batch at a time): what :meth:`TensorData.subset` keeps of such data."""

    def __init__(self, source, positions):
        self.source = source
        self.positions = np.asarray(positions)
        self.shape = (len(self.positions), source.shape[1])
        self.dtype = source.dtype
        self.ndim = 2

    def __len__(self):
        return len(self.positions)

    def __getitem__(self, index):
        return np.asarray(self.source[self.positions[index]])


class TensorData(Dataset):
    """Rows of ``X`` as standardized tensors on ``device``.

    A skorch ``Dataset`` whose target is its input: its ``X`` and ``y`` are
    both every row in the units the network trains in (:meth:`all_rows`).
    They are what skorch's scoring callbacks unpack when they score without
    their cache (``EpochScoring(..., use_caching=False)``): the net
    predicts ``X`` and the score compares the reconstructions with ``y``,
    the targets the training loss and the cached scores use. Training never
    reads them: it cuts batches with :meth:`batches`.

    Parameters
    ----------
    X : ndarray, sparse matrix or tensor of shape (n_samples, n_features)
    mean, scale : ndarray of shape (n_features,) or None
        Rows are returned as ``(x - mean) / scale``; ``None`` leaves them as is.
    device : str or torch.device
    dtype : torch.dtype, default=torch.float32
        Floating dtype of the tensors (training always uses float32).
    resident : bool
        If True, a dense ``X`` is converted and moved to the device at once
        (training) when it fits there (:func:`fits_on_device`, and no
        out-of-memory error on the way); otherwise, and if False
        (inference), only the rows asked for are. ``self.resident`` tells
        which happened.
    """

    def __init__(
        self, X, *, mean=None, scale=None, device="cpu", dtype=torch.float32,
        resident=False,
    ):
        self.device = torch.device(device)
        self.dtype = dtype
        self.n_features = X.shape[1]
        self._np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        # mean and scale in float64 on the host, for rows wider than the
        # tensors (see _to_device) and for the affine form below.
        mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        scale = None if scale is None else np.asarray(scale, dtype=np.float64)
        self._host_scaling = (mean, scale)
        self._shift = None if mean is None else self._vector(mean)
        self._scale = None if scale is None else self._vector(scale)
        # (x - mean) / scale as x * factor + offset, in one pass (_standardize).
        self._affine = None
        if mean is not None and scale is not None:
            self._affine = (self._vector(-mean / scale), self._vector(1.0 / scale))
        # True when self._rows holds the caller's own (unstandardized) rows:
        # batches are then standardized as they are cut, so that X is never
        # written to and never copied whole (a copy of 60,000 x 784 float32
        # costs 0.2 s, mostly page faults).
        self._raw = False
        if sp.issparse(X):
            self._rows = sp.csr_matrix(X)
        else:
            t = self._resident_tensor(X) if resident else None
            if t is None:
                self._rows = X
            elif self._shares_memory(t, X) and self._scales():
                self._rows, self._raw = t, True
            elif self._narrows(X):
                self._rows = t  # standardized before narrowing (_to_device)
            else:
                self._rows = self._standardize(t, X)
        self.resident = isinstance(self._rows, torch.Tensor)

    def __len__(self):
        return self._rows.shape[0]

    def __getitem__(self, i):
        """Return row ``i`` as skorch's ``Dataset`` does: ``(input, target)``,
        here the same standardized row twice."""
        n = len(self)
        i = operator.index(i)
        if not -n <= i < n:
            raise IndexError(f"row {i} is out of range for {n} rows")
        i %= n
        x = self.take(slice(i, i + 1))[0]
        return x, x

    @property
    def X(self):
        """Every row in the network's units: :meth:`all_rows`."""
        return self.all_rows()

    # An autoencoder's target is its input.
    y = X

    def all_rows(self):
        """Return every row, standardized, as one tensor.

        Where the rows are kept on the device standardized (the usual
        training data), a view of them, with no copy; otherwise a new
        tensor on the device, but for more than :data:`_BLOCK_ROWS` rows
        kept on the host: those are gathered on the host a block at a
        time, so that data that did not fit on the device (or is read from
        a memory-mapped file) is never moved there whole.
        """
        n = len(self)
        if self.resident or n <= _BLOCK_ROWS:
            return self.take(slice(None))
        return torch.cat(
            [self.take(slice(start, start + _BLOCK_ROWS)).cpu()
             for start in range(0, n, _BLOCK_ROWS)]
        )

    def _vector(self, v):
        return torch.as_tensor(np.asarray(v), dtype=self.dtype, device=self.device)

    def _resident_tensor(self, X):
        """Return all of ``X`` on the device, or None where it does not fit."""
        if not fits_on_device(X.shape[0] * X.shape[1] * self.dtype.itemsize, self.device):
            return None
        try:
            return self._to_device(X)
        except torch.cuda.OutOfMemoryError:
            return None

    def _narrows(self, rows):
        """Whether ``rows`` (a numpy array) are of a wider float type than
        the tensors and are standardized: :meth:`_to_device` then
        standardizes them before narrowing."""
        return (
            self._scales()
            and isinstance(rows, np.ndarray)
            and rows.dtype.kind == "f"
            and rows.dtype.itemsize > self._np_dtype.itemsize
        )

    def _to_device(self, rows):
        """Return ``rows`` as a tensor of ``dtype`` on the device, converting once.

        The tensor may share memory with the caller's array (input already of
        that dtype, on the CPU); :meth:`_standardize` then leaves it alone.

        Rows of a wider float type (float64 rows for float32 training) come
        back standardized: ``(x - mean) / scale`` is computed in their own
        precision, a block of rows at a time, before narrowing. Narrowing
        first would round a feature whose mean is large against its spread
        (a mean of 1e8 and a spread of 1: float32 steps of 8) to a few
        values, which no network can fit (8.6x PCA's held-out error on
        such data, against 0.009x when standardized first).
        """
        np_dtype = self._np_dtype
        if self._narrows(rows):
            mean, scale = self._host_scaling
            converted = np.empty(rows.shape, dtype=np_dtype)
            step = max(1, min(_BLOCK_ROWS, _NARROWING_VALUES // max(1, rows.shape[1])))
            for start in range(0, len(rows), step):
                block = np.array(rows[start : start + step], dtype=np.float64)
                if mean is not None:
                    block -= mean
                if scale is not None:
                    block /= scale
                # Beyond float32's range a value becomes infinite (only new
                # rows far outside the training rows': scoring handles it).
                with np.errstate(over="ignore"):
                    converted[start : start + step] = block
            return torch.from_numpy(converted).to(self.device, non_blocking=True)
        converted = np.array(rows, dtype=np_dtype, copy=None, order="C")
        if not converted.flags.writeable:
            converted = converted.copy()
        return torch.from_numpy(converted).to(self.device, non_blocking=True)

    def _scales(self):
        return self._shift is not None or self._scale is not None

    @staticmethod
    def _shares_memory(t, source):
        return (
            t.device.type == "cpu"
            and isinstance(source, np.ndarray)
            and np.may_share_memory(t.numpy(), source)
        )

    def _standardize(self, t, source, out=None):
        """Return ``(t - mean) / scale``, in place only if ``t`` is not ``source``'s memory.

        With both a mean and a scale, computed as ``t * (1 / scale) - mean /
        scale`` in one pass (``addcmul``: each batch is standardized as it
        is cut, so a second pass over it costs about 1% of a training step
        on 784 features). Its rounding error is of the order of
        ``ulp(x) / scale``, the error the rows' own float32 rounding
        already carries. Where ``t`` is the caller's memory, the result
        goes to the first rows of ``out`` if given (see :meth:`take`).
        """
        if not self._scales():
            return t
        in_place = not self._shares_memory(t, source)  # never write the caller's array
        if self._affine is not None:
            offset, factor = self._affine
            if in_place:
                out = t
            elif out is not None:
                out = out[: len(t)]
            return torch.addcmul(offset, t, factor, out=out)
        if self._shift is not None:
            return t.sub_(self._shift) if in_place else t.sub(self._shift)
        return t.div_(self._scale) if in_place else t.div(self._scale)

    def take(self, index, out=None):
        """Return rows ``index`` (a slice, or an array of positions) as a tensor.

        ``out``, a tensor of ``dtype`` on the device with at least as many
        rows, may receive the standardized copy of rows that are the
        caller's own memory; the result may then be a view of ``out``,
        which the next ``take`` into it overwrites. Inference passes one
        buffer for all its batches: a fresh 3 MB tensor a batch cost 15% of
        ``transform`` on the CPU (the new pages' faults).
        """
        if self.resident:
            rows = self._rows[index]
            if self._raw:  # a view of the caller's rows: standardize a copy
                rows = self._standardize(rows, self._rows.numpy(), out)
            return rows
        rows = self._rows[index]
        if sp.issparse(rows):
            rows = rows.toarray()
        if self._narrows(rows):
            return self._to_device(rows)  # standardized before narrowing
        return self._standardize(self._to_device(rows), rows, out)

    def subset(self, index):
        """Return a new ``TensorData`` holding only rows ``index``.

        Rows read from a memory-mapped file stay there: the subset holds
        their positions, and reads them a batch at a time as the whole
        does (indexing the file copied 90% of it into memory for early
        stopping's split)."""
        new = object.__new__(TensorData)
        new.__dict__.update(self.__dict__)
        if self.resident:
            index = torch.as_tensor(index, device=self.device)
        if isinstance(self._rows, _RowSubset):
            new._rows = _RowSubset(self._rows.source, self._rows.positions[index])
        elif isinstance(self._rows, np.ndarray) and is_memory_mapped(self._rows):
            new._rows = _RowSubset(self._rows, np.arange(len(self))[index])
        else:
            new._rows = self._rows[index]
        return new

    def batches(self, batch_size, *, shuffle=False, drop_singleton=False):
        """Yield ``(X_batch, X_batch)`` pairs: input and reconstruction target.

        With ``shuffle``, rows are visited in a fresh random order drawn from
        the current fit's generator (:func:`~sklearn_ae._random.current_generator`;
        torch's default generator outside a fit). ``drop_singleton`` skips a
        last batch of one row, which batch norm cannot train on, when an
        earlier batch exists (a batch of one row that is the only batch, or
        ``batch_size=1``, is kept).
        """
        n = len(self)
        order = None
        if shuffle:
            # Drawn on the device whether the rows are held there or not,
            # so that the order is the same when the same rows are streamed.
            order = torch.randperm(
                n, device=self.device, generator=current_generator(self.device)
            )
            if not self.resident:
                order = order.cpu().numpy()
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            if drop_singleton and batch_size > 1 and stop - start == 1 and start > 0:
                break
            if order is None:
                xb = self.take(slice(start, stop))
            elif self.resident:
                # One gather per batch: the batch is fresh in cache for the
                # forward pass, and no shuffled copy of X is ever made (on
                # 60,000 x 784 a whole-epoch gather made fits 13% slower).
                xb = self._rows.index_select(0, order[start:stop])
                if self._raw:  # a fresh copy: standardized in place
                    xb = self._standardize(xb, None)
            else:
                # Read in the shuffled order itself, so that a batch is the
                # resident path's, row for row: the same data trains the
                # same network whether it is held or streamed. (Batches read
                # in file order were summed in another order than on the
                # array; reordering them after the read cost 3% of a fit.)
                xb = self.take(order[start:stop])
            yield xb, xb
