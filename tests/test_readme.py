"""The README's examples run, and print what the README says they print."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def run_example(heading: str) -> tuple[str, str]:
    """The first Python block after ``heading``, run in a fresh interpreter: what it printed and
    the text block the README shows after it."""
    section = README.read_text(encoding="utf-8").split(heading, 1)[1]
    code, shown = re.search(r"```python\n(.*?)```\s*```text\n(.*?)```", section, re.S).groups()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout, shown


def test_quickstart_output_is_real():
    printed, shown = run_example("## Quickstart")
    assert printed == shown, f"README shows:\n{shown}\nthe code prints:\n{printed}"


def test_the_population_example_runs_and_prints_its_two_lines():
    printed, shown = run_example("### Many networks as one computation")
    # which members reach the bound may differ from one CPU to the next: the shape of the report may not
    pattern = r"(\d+) of 16 members reached tol\nbest: member (\d+), (\d+) epochs, max \|error\| (0\.\d{4})\n"
    for text in (printed, shown):
        match = re.fullmatch(pattern, text)
        assert match, text
        assert int(match.group(1)) >= 1 and float(match.group(4)) < 0.005
