"""Read the targets of a baked project's Makefile."""

import re
from pathlib import Path

TARGET = re.compile(r"^([A-Za-z][\w-]*):(?!=)(.*)$")


def make_targets(project: Path) -> dict[str, list[str]]:
    """Each target of the project's Makefile with the lines of its recipe."""
    targets: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (project / "Makefile").read_text().splitlines():
        if line.startswith("\t") and current is not None:
            current.append(line.strip())
            continue
        match = TARGET.match(line)
        current = targets.setdefault(match.group(1), []) if match else None
    return targets
