"""The README's quickstart prints what the README says it prints."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_output_is_real():
    text = README.read_text(encoding="utf-8")
    quickstart = text.split("## Quickstart", 1)[1]
    code, shown = re.search(r"```python\n(.*?)```\s*```text\n(.*?)```", quickstart, re.S).groups()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == shown, f"README shows:\n{shown}\nthe code prints:\n{run.stdout}"


def test_the_population_example_runs_and_prints_its_two_lines():
    text = README.read_text(encoding="utf-8")
    section = text.split("### Many networks as one computation", 1)[1]
    code, shown = re.search(r"```python\n(.*?)```\s*```text\n(.*?)```", section, re.S).groups()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    # which members reach the bound may differ from one CPU to the next: the shape of the report may not
    pattern = r"(\d+) of 16 members reached tol\nbest: member (\d+), (\d+) epochs, max \|error\| (0\.\d{4})\n"
    for printed in (run.stdout, shown):
        match = re.fullmatch(pattern, printed)
        assert match, printed
        assert int(match.group(1)) >= 1 and float(match.group(4)) < 0.005
