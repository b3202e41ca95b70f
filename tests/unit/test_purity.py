"""Pure modules read no clock, no file and no environment (DESIGN.md, "Checked, not hoped")."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = re.compile(r"(?<!def )\b(?:now|today|utcnow)\(|time\.time\(|(?<![\w.])open\(|\benviron\b")


def _pure_modules() -> list[Path]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = project["tool"]["importlinter"]["contracts"]
    pure = next(c for c in contracts if c["name"].startswith("Pure modules"))
    paths = []
    for module in pure["source_modules"]:
        path = ROOT / (module.replace(".", "/") + ".py")
        if path.exists():
            paths.append(path)
    return paths


def test_the_pure_module_list_is_not_empty() -> None:
    assert len(_pure_modules()) >= 8


def test_pure_modules_never_read_the_clock_files_or_environment() -> None:
    offences = []
    for path in _pure_modules():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0]
            if FORBIDDEN.search(code) and '"""' not in code:
                offences.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offences, "pure modules must take time, files and settings as values:\n" + "\n".join(offences)
