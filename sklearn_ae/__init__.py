"""scikit-learn compatible autoencoders built on PyTorch and skorch."""

# torch before scikit-learn (which the modules below import first): the same
# modules either way, but in this order the interpreter's last full garbage
# collection during the import comes late enough that none is due right
# after it. In the other order one is: about 0.1-0.2 s spent scanning the
# ~260,000 objects the imports created, in the first few thousand
# allocations of whatever runs next (the first fit, in benchmarks/RESULTS.md).
# Where scikit-learn was imported before this package (a joblib worker that
# unpickles a Pipeline, a notebook), the order is set already and one can
# still fall due; tests/test_benchmarks.py checks the plain import.
import torch  # noqa: F401

from ._autoencoder import AutoencoderTransformer
from ._outlier import AEOutlierDetector
from ._persistence import load, save
from ._scoring import neg_reconstruction_error
from ._vae import VAETransformer

__version__ = "0.1.0.dev0"

__all__ = [
    "AEOutlierDetector",
    "AutoencoderTransformer",
    "VAETransformer",
    "neg_reconstruction_error",
    "__version__",
    "load",
    "save",
]
