"""The documentation site builds with warnings as errors, and its examples print what it shows."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import torch_sigmoid_mlp

pytest.importorskip("sphinx", reason="the docs extra (sphinx, furo, myst-parser) is not installed")
pytest.importorskip("furo", reason="the docs extra (sphinx, furo, myst-parser) is not installed")
pytest.importorskip("myst_parser", reason="the docs extra (sphinx, furo, myst-parser) is not installed")

DOCS = Path(__file__).resolve().parents[1] / "docs"


def sphinx(builder: str, out: Path, doctrees: Path) -> subprocess.CompletedProcess:
    # A shared doctree cache: the doctest build reuses what the html build read.
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder]
    command += ["-d", str(doctrees), str(DOCS), str(out / builder)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs")
    html = sphinx("html", tmp, tmp / "doctrees")
    doctest = sphinx("doctest", tmp, tmp / "doctrees") if html.returncode == 0 else None
    return tmp, html, doctest


def test_site_builds_without_warnings(built):
    tmp, html, _ = built
    assert html.returncode == 0, f"sphinx-build -W -b html failed:\n{html.stdout}\n{html.stderr}"
    for page in ("index", "math", "tutorial", "fitting", "cli", "api", "benchmarks", "reliability"):
        assert (tmp / "html" / f"{page}.html").is_file(), f"no page {page}.html"


def test_examples_print_what_the_pages_show(built):
    tmp, html, doctest = built
    assert html.returncode == 0, "the html build failed; see test_site_builds_without_warnings"
    report = (tmp / "doctest" / "output.txt").read_text(encoding="utf-8")
    assert doctest.returncode == 0, f"sphinx-build -b doctest failed:\n{report}\n{doctest.stderr}"
    tests = re.search(r"Doctest summary\n=+\n\s*(\d+) tests", report)
    assert tests and int(tests.group(1)) >= 100, f"too few doctests ran:\n{report}"
    assert "0 failures in tests" in report, report


def test_the_tutorial_is_checked_against_the_library(built):
    # The tutorial's point: its hand-made epoch equals E.backward() and TapeFreeStep's update.
    page = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    for check in ("E_model.backward()", "step.update(lr=eta)", "local_gradients(model, x, d)"):
        assert check in page, f"the tutorial no longer runs {check}"
    assert page.count("[True, True, True]") == 3


def test_every_public_name_has_an_entry_in_the_api_reference():
    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. auto(?:class|function|data):: (\w+)", api, re.M))
    missing = sorted(set(torch_sigmoid_mlp.__all__) - documented)
    assert not missing, f"add these names of __all__ to docs/api.rst: {missing}"
    unknown = sorted(documented - set(torch_sigmoid_mlp.__all__))
    assert not unknown, f"docs/api.rst documents names that are not in __all__: {unknown}"


def test_math_page_has_every_section_of_the_spec():
    spec = (DOCS / "SPEC.md").read_text(encoding="utf-8")
    math = (DOCS / "math.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## (.+)$", spec, re.M)
    assert sections, "SPEC.md has no sections"
    missing = [s for s in sections if f"## {s}" not in math]
    assert not missing, f"docs/math.md lacks these sections of SPEC.md: {missing}"


def test_code_lines_fit_the_page():
    # The theme shows about 90 characters of code before a line scrolls out of sight. What a
    # doctest prints is the program's own output and is left as it is.
    too_long = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for opening, block in re.findall(r"^```([^\n]*)\n(.*?)^```", text, re.S | re.M):
            lines = block.splitlines()
            if opening == "{doctest}":
                lines = [line for line in lines if line.startswith((">>>", "..."))]
            too_long += [f"{page.name}: {line}" for line in lines if len(line) > 90]
    assert not too_long, "code lines wider than 90 characters:\n" + "\n".join(too_long)
