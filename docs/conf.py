"""Sphinx configuration for sklearn_ae.

Build (warnings are errors, the gallery's examples are run)::

    pip install -e '.[docs]'
    sphinx-build -W --keep-going -b html docs docs/_build/html

``-D plot_gallery=0`` skips running the examples (a quick check of the
text). The build needs no network: intersphinx links to scikit-learn, skorch,
PyTorch and Python are made only when ``SKLEARN_AE_DOCS_INTERSPHINX=1`` is
set (an online build); offline such references render as plain code.
"""

import os
import re
import warnings

import sklearn_ae

project = "sklearn_ae"
copyright = "sklearn_ae developers"
version = release = sklearn_ae.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    # Markdown: the benchmark tables are included from benchmarks/*.md.
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# The included benchmark files link to scripts and files beside them in the
# repository, which are not documents here, and may skip heading levels.
suppress_warnings = ["myst.xref_missing", "myst.header"]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# ------------------------------------------------------------------ API pages
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
# The class template (docs/_templates/class.rst) lists every public method
# with its full docstring, so numpydoc's own member tables would repeat them.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# --------------------------------------------------------------- intersphinx
# CI has no network: fetching an inventory there would be a warning, and
# warnings are errors. Links to other projects' docs are an online extra.
if os.environ.get("SKLEARN_AE_DOCS_INTERSPHINX") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "skorch": ("https://skorch.readthedocs.io/en/stable", None),
        "torch": ("https://pytorch.org/docs/stable", None),
        "joblib": ("https://joblib.readthedocs.io/en/stable", None),
    }
else:
    intersphinx_mapping = {}


# Methods inherited from scikit-learn (set_output, get_metadata_routing, ...)
# point into scikit-learn's user guide with :ref:, which resolves only
# through intersphinx; offline, their link text is shown as plain text.
_REF = re.compile(r":ref:`([^`<]+?)\s*<[^`>]+>`|:ref:`([^`]+)`")
# A bare ``n_features_in_`` in a shape is a hyperlink reference to
# reStructuredText; shown as the attribute name, as scikit-learn writes it.
_TRAILING_UNDERSCORE = re.compile(r"(?<![`\w])(n_features_in_)(?![`\w])")
# ... but not where an Attributes section defines it (numpydoc's field name).
_ATTRIBUTE_ENTRY = re.compile(r"^\s*n_features_in_\s*:")


def _offline_docstrings(app, what, name, obj, options, lines):
    inherited = not getattr(obj, "__module__", "sklearn_ae").startswith("sklearn_ae")
    for i, line in enumerate(lines):
        if inherited and not intersphinx_mapping:
            line = _REF.sub(lambda m: (m.group(1) or m.group(2)).strip(), line)
        if not _ATTRIBUTE_ENTRY.match(line):
            line = _TRAILING_UNDERSCORE.sub(r"`\1`", line)
        lines[i] = line


def setup(app):
    app.connect("autodoc-process-docstring", _offline_docstrings, priority=400)


# -------------------------------------------------------------------- gallery
# The examples train small networks on one torch thread (the estimators'
# default), so the gallery stays within CI's budget on 2 CPU cores.
warnings.filterwarnings(
    "ignore", category=UserWarning, message="Matplotlib is currently using agg"
)
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    # "Examples using this class" at the end of each API page.
    "doc_module": ("sklearn_ae",),
    "backreferences_dir": "generated/backreferences",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    # A failing example fails the build (and with it CI).
    "only_warn_on_example_error": False,
}

# ---------------------------------------------------------------------- HTML
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn_ae {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    # Gallery pages need the width for code and figures more than an
    # on-page table of contents.
    "secondary_sidebar_items": {
        page: ["page-toc"]
        for page in ["index", "user_guide", "variants", "api", "benchmarks/*", "generated/*"]
    },
}
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
