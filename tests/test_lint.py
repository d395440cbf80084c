"""Static checks of the source: no name is used that is not defined (pyflakes), in the library or the CLI.

A moved function whose error path names an exception the new module does not import passes every test that
does not reach that path; pyflakes reads every line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_no_undefined_names() -> None:
    pytest.importorskip("pyflakes")
    done = subprocess.run(
        [sys.executable, "-m", "pyflakes", "pconv_kit", "cli", "tests", "tools", "benchmarks", "examples"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    problems = [
        line for line in (done.stdout + done.stderr).splitlines()
        if "undefined name" in line or "undefined local" in line or "syntax" in line.lower()
    ]
    assert not problems, "\n".join(problems)
