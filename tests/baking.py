"""Generate projects from the template and run tools on them."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parents[1]

Bake = Callable[..., Path]


def bake_into(output_dir: Path, **answers: Any) -> Path:
    """Generate a project with `answers` (the rest default) and return its directory."""
    output_dir.mkdir(parents=True, exist_ok=True)
    # A private config keeps cookiecutter's replay files out of the home folder.
    config = output_dir / ".cookiecutterrc"
    config.write_text(
        f"cookiecutters_dir: {output_dir / '.cookiecutters'}\nreplay_dir: {output_dir / '.replay'}\n"
    )
    project = cookiecutter(
        str(TEMPLATE_DIR),
        no_input=True,
        extra_context=answers,
        output_dir=str(output_dir),
        config_file=str(config),
    )
    return Path(project)


def run(command: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command, failing the test with its output when it exits non-zero."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return result


def tool(name: str) -> str:
    """The path of a tool installed next to this interpreter (ruff, mypy, cookiecutter)."""
    return str(Path(sys.executable).parent / name)


def environment_without_virtualenv() -> dict[str, str]:
    """This process's environment, minus what would make uv reuse the template's venv."""
    return {
        k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}
    }
