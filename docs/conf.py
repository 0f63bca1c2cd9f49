"""Sphinx configuration: furo theme, API from docstrings, and a sphinx-gallery run on real CIFAR-10.

The gallery needs CIFAR-10: ``FEATURELENS_DATA_DIR`` (or featurelens's usual search and download).
Its examples share one trained model, cached under ``_build/gallery-cache`` between examples;
the explorer example writes the model's explorer under ``site-extra/`` there, published at
``explorer/index.html``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from matplotlib.figure import Figure
from sphinx_gallery.scrapers import figure_rst

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "gallery"))  # the examples' small helper module

os.environ.setdefault("FEATURELENS_GALLERY_CACHE", str(HERE / "_build" / "gallery-cache"))
# The gallery's explorer example writes the explorer here; its content lands at the site's root.
SITE_EXTRA = Path(os.environ["FEATURELENS_GALLERY_CACHE"]) / "site-extra"
SITE_EXTRA.mkdir(parents=True, exist_ok=True)
html_extra_path = [str(SITE_EXTRA)]
os.environ.setdefault("KERAS_BACKEND", "torch")  # the quicker Keras backend on a small CPU
os.environ.setdefault("MPLBACKEND", "Agg")

project = "featurelens"
author = "featurelens developers"
copyright = "2026, featurelens developers"
release = "0.1.0"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode", "sphinx_gallery.gen_gallery"]
html_theme = "furo"
html_title = "featurelens"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}
exclude_patterns = ["_build"]
suppress_warnings = ["config.cache"]


def featurelens_scraper(block, block_vars, gallery_conf, **kwargs):
    """Collect the matplotlib Figures an example block created (featurelens never uses pyplot)."""
    shown = gallery_conf.setdefault("_featurelens_shown", [])
    paths = []
    for value in list(block_vars["example_globals"].values()):
        for fig in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(fig, Figure) and not any(fig is seen for seen in shown):
                shown.append(fig)
                path = next(block_vars["image_path_iterator"])
                fig.savefig(path, dpi=100)
                paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])


sphinx_gallery_conf = {
    "examples_dirs": "../gallery",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"_helpers\.py",
    "image_scrapers": (featurelens_scraper,),
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "show_memory": False,
}
