"""The documentation site builds with warnings as errors, its examples print what it shows, and it
renders its mathematics with nothing from outside itself."""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import torch_sigmoid_mlp

pytest.importorskip("sphinx", reason="the docs extra (sphinx, furo, myst-parser) is not installed")
pytest.importorskip("furo", reason="the docs extra (sphinx, furo, myst-parser) is not installed")
pytest.importorskip("myst_parser", reason="the docs extra (sphinx, furo, myst-parser) is not installed")
if importlib.util.find_spec("sphinx-mathjax-offline") is None:
    pytest.skip("the docs extra (sphinx-mathjax-offline) is not installed", allow_module_level=True)

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


# The site renders its mathematics offline --------------------------------------------------------

#: Every page with mathematics; test_every_page_with_mathematics_is_browsed keeps the list whole.
MATH_PAGES = (
    "index",
    "tutorial",
    "math",
    "fitting",
    "derivatives",
    "scaling-out",
    "cli",
    "api",
    "interoperability",
    "deploying",
)

#: ``<link rel=...>`` kinds that a browser fetches.
FETCHED_LINKS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon", "apple-touch-icon", "manifest"}

#: The only URLs of a script, stylesheet or font outside the site that the site's JavaScript holds, each
#: in MathJax and never fetched in a browser (the browser tests below see no request leave the page).
NEVER_FETCHED = {
    # the speech rule engine's rule files for Internet Explorer only
    "https://cdn.jsdelivr.net/npm/sre-mathmaps-ie@",
    # its rule files by default; MathJax points it at [mathjax]/sre/mathmaps in the site
    "https://cdn.jsdelivr.net/npm/speech-rule-engine@",
    # XPath for a JavaScript without a DOM (Node.js); a browser has document.evaluate
    "https://cdn.jsdelivr.net/npm/wicked-good-xpath@1.3.0/dist/wgxpath.install.js",
}


def is_outside(url: str) -> bool:
    """A URL with a scheme other than data:, or a protocol-relative one (``//host/…``)."""
    url = url.strip()
    return url.startswith("//") or (
        re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", url) is not None and not url.lower().startswith("data:")
    )


def css_urls(css: str) -> list[str]:
    """What a stylesheet fetches: its ``url(…)`` and ``@import "…"`` targets."""
    urls = re.findall(r"""url\(\s*(["']?)(.*?)\1\s*\)""", css, re.S)
    imports = re.findall(r"""@import\s+(["'])(.*?)\1""", css)
    return [url for _, url in urls + imports]


class Fetches(HTMLParser):
    """The URLs a page makes a browser fetch: scripts, fetched links, images, frames, media, inline CSS."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self._style = False
        self.math = 0  # elements of class "math": what Sphinx leaves for MathJax to typeset

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "math" in (attrs.get("class") or "").split():
            self.math += 1
        rel = set((attrs.get("rel") or "").lower().split())
        if tag == "link" and rel & FETCHED_LINKS:
            self.urls.append(attrs.get("href") or "")
        for name in ("src", "data", "poster"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        if attrs.get("srcset"):
            self.urls += [part.split()[0] for part in attrs["srcset"].split(",") if part.strip()]
        if attrs.get("style"):
            self.urls += css_urls(attrs["style"])
        self._style = tag == "style"

    def handle_endtag(self, tag):
        self._style = False

    def handle_data(self, data):
        if self._style:
            self.urls += css_urls(data)


def local_target(base: Path, url: str) -> Path:
    """The file a relative URL names, seen from the folder ``base``."""
    return (base / unquote(urlsplit(url).path)).resolve()


def test_pages_load_nothing_from_outside_the_site(built):
    tmp, html, _ = built
    assert html.returncode == 0, "the html build failed; see test_site_builds_without_warnings"
    site = (tmp / "html").resolve()
    outside, missing = [], []
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 10, f"only {len(pages)} pages built"
    loaded_js = set()
    for page in pages:
        fetches = Fetches()
        fetches.feed(page.read_text(encoding="utf-8"))
        for url in fetches.urls:
            if is_outside(url):
                outside.append(f"{page.relative_to(site)}: {url}")
            elif not url.startswith("data:"):
                target = local_target(page.parent, url)
                if not target.is_file() or site not in target.parents:
                    missing.append(f"{page.relative_to(site)}: {url}")
                elif target.suffix == ".js":
                    loaded_js.add(target)
    for css in sorted(site.rglob("*.css")):
        for url in css_urls(css.read_text(encoding="utf-8")):
            if is_outside(url):
                outside.append(f"{css.relative_to(site)}: {url}")
            elif not url.startswith("data:") and not local_target(css.parent, url).is_file():
                missing.append(f"{css.relative_to(site)}: {url}")
    assert not outside, "the site loads these from outside itself:\n" + "\n".join(outside)
    assert not missing, "the site refers to these files, which it lacks:\n" + "\n".join(missing)

    # MathJax: the pages load it from the site, and it finds in the site what it loads later (TeX
    # extensions, the accessibility tools, the fonts its stylesheet names when it typesets).
    mathjax = site / "_static" / "mathjax"
    assert mathjax / "tex-chtml.js" in loaded_js, f"the pages do not load MathJax from the site: {loaded_js}"
    fonts = sorted((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("MathJax_*.woff"))
    assert len(fonts) >= 20, f"MathJax's fonts are not in the site: {fonts}"
    for part in ("input/tex/extensions/ams.js", "a11y/explorer.js", "sre/mathmaps/en.json"):
        assert (mathjax / part).is_file(), f"MathJax's {part} is not in the site"
    assert not (mathjax / "latest.js").exists(), "latest.js, which loads MathJax from a CDN, is in the site"
    licence = mathjax / "LICENSE"
    assert licence.is_file() and "Apache License" in licence.read_text(), "no MathJax licence in the site"
    # A script, stylesheet or font that the JavaScript could fetch from outside the site.
    fetched = re.compile(r"""https?://[^\s"'`)<>\\]+""")
    suffixes = (".js", ".mjs", ".css", ".woff", ".woff2", ".ttf", ".otf", ".eot", ".json")
    found = set()
    for script in sorted(loaded_js | set(mathjax.rglob("*.js"))):
        for url in fetched.findall(script.read_text(encoding="utf-8", errors="replace")):
            path = urlsplit(url).path
            if path.endswith(suffixes) or "/npm/" in path or "cdn" in urlsplit(url).netloc:
                found.add(url)
    assert found == NEVER_FETCHED, (
        f"the site's JavaScript names scripts, stylesheets or fonts outside the site: "
        f"{sorted(found - NEVER_FETCHED)}"
    )


def test_every_page_with_mathematics_is_browsed(built):
    tmp, html, _ = built
    assert html.returncode == 0, "the html build failed; see test_site_builds_without_warnings"
    with_math = set()
    for page in (tmp / "html").glob("*.html"):
        fetches = Fetches()
        fetches.feed(page.read_text(encoding="utf-8"))
        if fetches.math:
            with_math.add(page.stem)
    assert with_math == set(MATH_PAGES), f"set MATH_PAGES to {sorted(with_math)}"


BROWSER = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)),
    None,
)
needs_browser = pytest.mark.skipif(
    BROWSER is None,
    reason="no Chromium on this machine (chromium, chromium-browser, google-chrome): the pages' "
    "mathematics is not rendered in a browser here (Debian: apt-get install chromium)",
)


def browse(url: str, work: Path) -> tuple[str, list[str]]:
    """Open ``url`` in headless Chromium with the network blocked; the DOM once the page's scripts
    have run, and the URLs the page asked for over the network (the browser's own requests left out)."""
    work.mkdir(parents=True, exist_ok=True)
    netlog = work / "netlog.json"
    command = [
        BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update",
        f"--user-data-dir={work / 'profile'}",
        # no network: every request goes to a proxy that is not there, and no host name resolves
        "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--log-net-log={netlog}", "--virtual-time-budget=30000", "--dump-dom", url,
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and "</html>" in run.stdout, f"Chromium failed on {url}:\n{run.stderr[-3000:]}"
    log, _ = json.JSONDecoder().raw_decode(netlog.read_text(encoding="utf-8"))
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # The page's requests have its origin ("null" for file://); the browser's own have none.
    requests = []
    for event in log["events"]:
        params = event.get("params", {})
        if event["type"] == start and "url" in params and params.get("initiator") != "not an origin":
            requests.append(params["url"])
    return run.stdout, requests


class Rendered(HTMLParser):
    """The text a reader sees, the math MathJax typeset (``mjx-container``), the text inside it, and
    MathJax's errors (``mjx-merror``)."""

    HIDDEN = frozenset({"script", "style", "template", "noscript", "head"})

    def __init__(self):
        super().__init__()
        self.text, self.math_text = [], []
        self.containers = self.errors = 0
        self._hidden = self._math = 0

    def handle_starttag(self, tag, attrs):
        self._hidden += tag in self.HIDDEN
        self._math += tag == "mjx-container"
        self.containers += tag == "mjx-container"
        self.errors += tag == "mjx-merror" or any(name == "data-mjx-error" for name, _ in attrs)

    def handle_endtag(self, tag):
        self._hidden -= tag in self.HIDDEN
        self._math -= tag == "mjx-container"

    def handle_data(self, data):
        if not self._hidden:
            self.text.append(data)
            if self._math:
                self.math_text.append(data)


@needs_browser
def test_the_browser_test_sees_a_request_that_leaves_the_page(tmp_path):
    # The check below is only as good as its eyes: a page that loads a script and a font from
    # outside is caught, with the network blocked.
    page = tmp_path / "probe.html"
    page.write_text(
        '<html><head><script src="https://cdn.example.org/x.js"></script>'
        "<style>@font-face{font-family:F;src:url(https://fonts.example.org/f.woff)}</style></head>"
        '<body><p style="font-family:F">text</p></body></html>'
    )
    _, requests = browse(page.as_uri(), tmp_path / "browser")
    assert "https://cdn.example.org/x.js" in requests, requests
    assert "https://fonts.example.org/f.woff" in requests, requests


@needs_browser
@pytest.mark.parametrize("name", MATH_PAGES)
def test_mathematics_renders_offline_in_a_browser(built, name, tmp_path):
    tmp, html, _ = built
    assert html.returncode == 0, "the html build failed; see test_site_builds_without_warnings"
    page = tmp / "html" / f"{name}.html"
    source = Fetches()
    source.feed(page.read_text(encoding="utf-8"))
    dom, requests = browse(page.as_uri(), tmp_path / "browser")

    assert not requests, f"{name}.html asked the network for {requests}"
    rendered = Rendered()
    rendered.feed(dom)
    text, math_text = "".join(rendered.text), "".join(rendered.math_text)
    assert rendered.containers == source.math > 0, (
        f"{name}.html: MathJax typeset {rendered.containers} of the page's {source.math} formulas"
    )
    assert rendered.errors == 0, f"{name}.html: {rendered.errors} formulas are MathJax errors"
    # An unknown command comes out as its name in red: no TeX command is left in a formula.
    assert not re.search(r"\\[A-Za-z]", math_text), f"{name}.html: TeX left in a formula: {math_text[:300]}"
    for delimiter in ("\\(", "\\["):
        at = text.find(delimiter)
        assert at < 0, f"{name}.html shows raw TeX: …{text[max(at - 80, 0) : at + 120]}…"
    # The fonts MathJax's stylesheet names are files of the site.
    site = (tmp / "html").resolve()
    fonts = [url for url in css_urls(dom) if ".woff" in url]
    assert fonts, f"{name}.html: MathJax named no fonts"
    for url in fonts:
        assert url.startswith(site.as_uri() + "/"), f"{name}.html: a font from outside the site: {url}"
        assert local_target(site, url[len(site.as_uri()) + 1 :]).is_file(), f"{name}.html: no font {url}"
