"""Regenerate the two gallery figures that the README shows.

Run from the repository root: ``python docs/gallery_figures.py``. It runs
each example as the gallery does and saves the chosen figure to
``docs/images/``, small enough to keep in the repository (the gallery's own
images are build outputs and are not committed).
"""

import runpy
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402  (a dependency of matplotlib)

ROOT = Path(__file__).resolve().parent.parent
# example file -> (index of its figure, 1-based; output name)
FIGURES = {
    "plot_12_latent_space_2d.py": (1, "latent_space_2d.png"),
    "plot_14_outlier_detection.py": (1, "outlier_roc.png"),
}


def run(example, figure_index, output):
    shown = []

    def show(*args, **kwargs):
        for number in plt.get_fignums():
            shown.append(number)
            if len(shown) == figure_index:
                plt.figure(number).savefig(output, dpi=55, bbox_inches="tight")
                # A 256-colour palette keeps the file small for the repository.
                Image.open(output).convert("RGB").quantize(256).save(output, optimize=True)
        plt.close("all")

    plt.show = show
    runpy.run_path(str(ROOT / "examples" / example), run_name="__main__")
    if len(shown) < figure_index:
        sys.exit(f"{example} showed {len(shown)} figures, fewer than {figure_index}")


def main():
    out = ROOT / "docs" / "images"
    out.mkdir(exist_ok=True)
    for example, (figure_index, name) in FIGURES.items():
        run(example, figure_index, out / name)
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
