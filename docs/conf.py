"""Sphinx configuration of the torch-sigmoid-mlp documentation site.

Build it with ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (docs/README.md).
"""

from __future__ import annotations

import os
import re
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from docutils import nodes
from sphinx.errors import ConfigError
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[1]
# The site documents this checkout, also where the package is not installed.
sys.path.insert(0, str(ROOT))

import torch_sigmoid_mlp  # noqa: E402

project = "torch-sigmoid-mlp"
author = "the torch-sigmoid-mlp authors"
copyright = "the torch-sigmoid-mlp authors"
version = release = torch_sigmoid_mlp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "myst_parser",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# SPEC.md is the plain-text source of math.md; README.md says how to build this site.
exclude_patterns = ["_build", "README.md", "SPEC.md"]

# Markdown pages: $…$ and $$…$$ for MathJax, ::: fences for directives, anchors for headings.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# The docstrings are Google style (Args:, Returns:, Example::) with PyTorch's Shape: section.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Attributes: as a field list; as .. attribute:: entries they would clash with the dataclass fields
# that autodoc documents too.
napoleon_use_ivar = True
napoleon_custom_sections = ["Shape"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}

# Every doctest block starts from the same names the package's own doctests get (conftest.py).
doctest_global_setup = """
import torch
import torch_sigmoid_mlp
from torch_sigmoid_mlp import *
"""


html_theme = "furo"
html_title = f"torch-sigmoid-mlp {release}"
html_static_path = ["_static"]
html_css_files = ["benchmarks.css"]
# MathJax comes with the site, in _static/mathjax (_copy_mathjax), not from a CDN: the pages load
# nothing from outside the site, and their mathematics renders where there is no internet.
mathjax_path = "mathjax/tex-chtml.js"

#: What of MathJax the site ships: the component the pages load (TeX in, HTML with web fonts out,
#: the menu), what it loads on demand (TeX extensions, the accessibility tools and the speech rule
#: engine that its menu turns on), and its fonts. The other combined components, the SVG output,
#: the Node.js adaptors and ``latest.js`` (which fetches MathJax from a CDN) stay out. MathJax's
#: licence comes from ``_static/mathjax/LICENSE``.
MATHJAX_PARTS = (
    "tex-chtml.js",
    "input/tex/extensions/",
    "output/chtml/fonts/woff-v2/",
    "ui/",
    "a11y/",
    "sre/",
)


def _mathjax_source() -> Path:
    """MathJax 3 and its fonts, as the package ``sphinx-mathjax-offline`` ships them (the ``docs``
    and ``dev`` extras install it); a clear error where it is missing."""
    try:
        files = distribution("sphinx-mathjax-offline").locate_file("sphinx-mathjax-offline")
        source = Path(str(files)) / "static" / "mathjax"
    except PackageNotFoundError:
        source = None
    if source is None or not (source / "tex-chtml.js").is_file():
        raise ConfigError(
            "the site renders its mathematics with the MathJax of the package sphinx-mathjax-offline, "
            "which is not installed: python3 -m pip install -e '.[docs]'"
        )
    return source


def _copy_mathjax(app, exception) -> None:
    """Copy ``MATHJAX_PARTS`` into the built site's ``_static/mathjax``, where ``mathjax_path`` points."""
    if exception is not None or app.builder.format != "html":
        return
    from sphinx.util.fileutil import copy_asset

    def excluded(path: str) -> bool:
        # copy_asset asks about folders too ("input", "input/tex"): keep those on the way to a part.
        path = path.replace(os.sep, "/").removeprefix("./")
        return not any(path.startswith(part) or part.startswith(path + "/") for part in MATHJAX_PARTS)

    copy_asset(_mathjax_source(), Path(app.outdir) / "_static" / "mathjax", excluded=excluded, force=True)


class ProgramHelp(SphinxDirective):
    """``{program-help} fit``: the ``--help`` text of a subcommand, taken from the parser itself,
    so that the command-line page cannot drift from the command."""

    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        from torch_sigmoid_mlp.cli import build_parser

        # argparse wraps to the terminal's width; a fixed one makes the page the same everywhere.
        previous = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "90"
        try:
            parser = build_parser()
            if self.arguments:
                name = self.arguments[0]
                subparsers = next(a for a in parser._subparsers._group_actions if a.choices)
                if name not in subparsers.choices:
                    raise self.error(f"no subcommand {name!r}; the parser has {sorted(subparsers.choices)}")
                parser = subparsers.choices[name]
            text = parser.format_help()
        finally:
            if previous is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = previous
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def _attributes_not_variables() -> None:
    """Head the ``:ivar:`` fields that ``napoleon_use_ivar`` writes "Attributes", as the docstrings do."""
    from sphinx.domains.python import PyObject

    for field in PyObject.doc_field_types:
        if field.name == "variable":
            field.label = "Attributes"


def _formulas_are_text(app, doctree) -> None:
    """Show a docstring's ``::`` block of formulas as text; Python highlighting would colour its ``^``.

    Blocks that open with ``>>>`` (the examples) keep the console highlighting Sphinx gives them.
    """
    for block in doctree.findall(nodes.literal_block):
        if block.get("language", "default") == "default" and not block.astext().lstrip().startswith(">>>"):
            block["language"] = "text"


def _constant_docs(app, what, name, obj, options, lines) -> None:
    """Document a constant that the package re-exports with the ``#:`` comment of its own module.

    autodoc reads ``#:`` comments only in the module it is pointed at, the package's ``__init__``,
    and would fall back on the docstring of the constant's type (``int``, ``tuple``).
    """
    if what != "data" or not name.startswith("torch_sigmoid_mlp."):
        return
    import pkgutil

    from sphinx.pycode import ModuleAnalyzer

    attribute = name.rsplit(".", 1)[1]
    for module in pkgutil.walk_packages(torch_sigmoid_mlp.__path__, "torch_sigmoid_mlp."):
        comment = ModuleAnalyzer.for_module(module.name).find_attr_docs().get(("", attribute))
        if comment and getattr(sys.modules.get(module.name), attribute, None) is obj:
            lines[:] = list(comment)
            return


#: Titles, in page order, of the committed results that ``benchmarks.md`` shows; a results file not
#: named here comes after them under its own name.
BENCHMARK_TITLES = {
    "step_cpu": "One training step",
    "memory": "Memory of a step",
    "fit": "Fitting to a bound",
    "derivatives": "Derivatives",
    "lm": "Levenberg–Marquardt against steepest descent",
    "lm_memory": "Memory of a Levenberg–Marquardt epoch",
    "scaling_cpu": "Data-parallel steps, 2 cores",
    "scaling_cpu16": "Data-parallel steps, 16 cores",
    "chunk_memory_cpu": "Memory with chunks, CPU",
    "chunk_memory_h100": "Memory with chunks, GPU",
}


def _benchmark_results(app, docname, source) -> None:
    """Put every committed ``benchmarks/results/*.md`` where ``benchmarks.md`` says ``{results}``.

    Each file comes under a heading of this page, its own headings one level below, so that a new
    results file shows up without an edit here and the page's headings stay consecutive.
    """
    if docname != "benchmarks":
        return
    results = ROOT / "benchmarks" / "results"
    order = list(BENCHMARK_TITLES)
    paths = sorted(
        results.glob("*.md"), key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.stem)
    )
    parts = []
    for path in paths:
        levels = [len(m.group(1)) for m in re.finditer(r"^(#+) ", path.read_text(encoding="utf-8"), re.M)]
        offset = f":heading-offset: {3 - min(levels)}\n" if levels else ""
        title = BENCHMARK_TITLES.get(path.stem, path.stem)
        parts.append(f"## {title}\n\n```{{include}} ../benchmarks/results/{path.name}\n{offset}```\n")
    source[0] = source[0].replace("{results}", "\n".join(parts))


def _skip_generated_members(app, what, name, obj, skip, options):
    """Leave out the ``set_{method}_request`` methods scikit-learn generates on an estimator.

    They are scikit-learn's metadata routing, documented by scikit-learn (their docstrings refer to
    its glossary, which this site cannot link to), not part of this library's API.
    """
    if re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def setup(app):
    _mathjax_source()  # fail before the build, not after it, where MathJax is missing
    _attributes_not_variables()
    app.connect("autodoc-skip-member", _skip_generated_members)
    app.connect("source-read", _benchmark_results)
    app.connect("autodoc-process-docstring", _constant_docs)
    app.connect("doctree-read", _formulas_are_text)
    app.add_directive("program-help", ProgramHelp)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True}
