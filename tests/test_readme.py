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
