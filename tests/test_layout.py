"""The house: imports flow one way (cli → estimator → training → core), rooms stay small, and
``import torch_sigmoid_mlp`` loads none of the optional, heavy dependencies.

The imports are read with ``ast``, at module level and inside functions alike, so that an import
put inside a function to dodge a cycle counts as the cycle it is.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

import pytest

import torch_sigmoid_mlp

PACKAGE = Path(torch_sigmoid_mlp.__file__).parent
NAME = "torch_sigmoid_mlp"

#: The rooms from the bottom up: a module may import its own room's modules and those of lower ones.
LAYERS = ("core", "training", "estimator", "cli")

#: Lines of code (no docstrings, comments or blank lines) a class or a function may have at most.
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 80

#: Optional or heavy dependencies that ``import torch_sigmoid_mlp`` must leave for later.
DEFERRED = ("sklearn", "scipy", "pandas", "matplotlib", "tensorboard", "onnx", "onnxruntime")


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name; a package's ``__init__`` under the package's name."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = (NAME, *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            # `from .core import functional` names the module functional, not the package core
            targets = [f"{stem}.{alias.name}" for alias in node.names] + [stem]
            targets = [t for t in targets[:-1] if t in MODULES] or [stem]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # `import torch_sigmoid_mlp.core.x as y`
                target = target.rpartition(".")[0]
            if target.startswith(NAME) and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name: str) -> int:
    """The room's rank in :data:`LAYERS`; the package's own ``__init__`` and ``__main__`` are above all."""
    room = name.split(".")[1] if "." in name else ""
    return LAYERS.index(room) if room in LAYERS else len(LAYERS)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a cycle or several."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_room_is_a_package_of_the_layout():
    rooms = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert rooms == set(LAYERS)
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"], "every module lives in a room"


def test_the_import_reader_sees_imports_inside_functions():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    # lm's call of the loop is an import inside a function: the reader must see it
    assert f"{NAME}.training.loop" in GRAPH[f"{NAME}.training.lm"]
    assert f"{NAME}.core.functional" in GRAPH[f"{NAME}.training.objective"]


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_imports_flow_down_from_cli_to_estimator_to_training_to_core():
    upward = [
        f"{name} ({LAYERS[_layer(name)]}) imports {target}"
        for name, targets in GRAPH.items()
        for target in sorted(targets)
        if _layer(target) > _layer(name)
    ]
    assert upward == []


def code_lines(source: str, node: ast.AST) -> int:
    """Lines of ``node`` that hold code: not blank, not only a comment, not in a docstring."""
    docstrings = set()
    for inner in ast.walk(node):
        body = getattr(inner, "body", None)
        if (
            isinstance(inner, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = set()
    skip = {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
    }
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in skip:
            continue
        for line in range(token.start[0], token.end[0] + 1):
            if node.lineno <= line <= node.end_lineno and line not in docstrings:
                lines.add(line)
    return len(lines)


def test_code_lines_leave_out_docstrings_comments_and_blank_lines():
    source = textwrap.dedent('''
        def f(x):
            """A docstring
            of two lines."""
            # a comment

            y = x + 1  # a comment after code
            return (y,
                    y)
    ''')
    assert code_lines(source, ast.parse(source).body[0]) == 4


@pytest.mark.parametrize("name", sorted(MODULES))
def test_rooms_hold_classes_and_functions_a_reader_holds_in_one_sitting(name):
    source = MODULES[name].read_text(encoding="utf-8")
    too_long = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            limit = MAX_CLASS_LINES
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            limit = MAX_FUNCTION_LINES
        else:
            continue
        lines = code_lines(source, node)
        if lines > limit:
            too_long.append(f"{node.name}: {lines} lines of code (at most {limit})")
    assert too_long == []


def test_importing_the_package_leaves_the_optional_dependencies_unloaded():
    code = (
        "import sys, torch_sigmoid_mlp\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({DEFERRED!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_licence_text_ships_with_the_package():
    """``pyproject.toml`` says MIT and names ``LICENSE``, which holds the MIT text: setuptools puts it
    into the wheel's ``.dist-info/licenses/`` and the sdist."""
    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
    root = PACKAGE.parent
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (root / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text
