"""What a benchmark report says about the machine it ran on (shared by the
benchmark scripts; ``bench_speed.py`` describes its own setup at length)."""

import os
import platform


def cpuinfo(field):
    """Return the first value of ``field`` in /proc/cpuinfo, or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model():
    """Return the CPU's model name from /proc/cpuinfo, else what
    :mod:`platform` knows."""
    return (
        cpuinfo("model name") or platform.processor() or platform.machine()
        or "unknown CPU"
    )


def load_average(sep=" ", missing="n/a"):
    """Return the 1, 5 and 15 minute load averages as text joined by
    ``sep``, or ``missing``."""
    try:
        return sep.join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return missing


def machine_description():
    """Return CPU, system, Python, torch (and its thread count) and
    scikit-learn versions in one line."""
    import sklearn
    import torch

    return (
        f"{cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), scikit-learn "
        f"{sklearn.__version__}"
    )
