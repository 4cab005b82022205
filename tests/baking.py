"""Generate projects from the template and run tools on them."""

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
# The generated suites run as `make test-parallel` runs them, a worker per core and a
# database per worker: most of a suite waits on PostgreSQL and servers, and on the
# 2-core CI machine a suite took 105 s instead of 228 s.
GENERATED_SUITE = ("uv", "run", "--no-sync", "pytest", "-n", "auto", "-p", "no:cacheprovider")

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


def offered_python_versions() -> list[str]:
    """The python_version answers the template offers."""
    versions: list[str] = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())[
        "python_version"
    ]
    return versions


def pyenv_folders() -> list[str]:
    """The bin folders of pyenv's interpreters for the offered versions, newest first.

    uv does not look in pyenv's versions folder, and pyenv's shims answer only for
    the global version: on PATH, these folders let uv find every offered one.
    """
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    return [
        str(folder / "bin")
        for version in offered_python_versions()
        for folder in sorted(root.glob(f"{version}.*"), reverse=True)
        if (folder / "bin" / f"python{version}").is_file()
    ]


def environment_without_virtualenv() -> dict[str, str]:
    """This process's environment for uv in a generated project.

    Without what would make uv reuse the template's venv or override the project's
    .python-version, with every offered interpreter findable, and with uv's Python
    downloads off: a missing interpreter is an error, never a download.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON"}
    }
    # uv's own folder first: a pyenv shim named uv would pick its interpreter from the
    # project's .python-version and find no uv there. (`uv run` tells its children.)
    uv = os.environ.get("UV") or shutil.which("uv")
    uv_folders = [str(Path(uv).parent)] if uv else []
    env["PATH"] = os.pathsep.join([*uv_folders, *pyenv_folders(), env.get("PATH", "")])
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


def pinned_python(project: Path) -> str:
    """The Python version a baked project pins in .python-version, e.g. "3.12"."""
    return (project / ".python-version").read_text().strip()


def require_python(version: str) -> None:
    """Fail in one line unless an interpreter for `version` is installed; never fall back."""
    found = subprocess.run(
        ["uv", "python", "find", "--no-project", version],
        env=environment_without_virtualenv(),
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        pytest.fail(
            f"Python {version} is not installed, and the generated tests must run on it:"
            f" install it (pyenv install {version}, or uv python install {version})",
            pytrace=False,
        )


def install_on_pinned_python(project: Path, *options: str) -> dict[str, str]:
    """`uv sync` a baked project on the Python it pins; return the environment to run it in."""
    version = pinned_python(project)
    require_python(version)
    env = environment_without_virtualenv()
    run(["uv", "sync", "--quiet", *options], cwd=project, env=env)
    python = project / ".venv" / "bin" / "python"
    command = [str(python), "-c", "import platform; print(platform.python_version())"]
    installed = run(command, cwd=project).stdout.strip()
    assert installed.startswith(f"{version}."), f"uv installed Python {installed}, not {version}"
    return env


def assert_ran_on(output: str, version: str) -> None:
    """Assert that a pytest run's header names Python `version`."""
    header = re.search(r"^platform \S+ -- Python (\S+),", output, re.MULTILINE)
    assert header, "the pytest header is missing (was -q given?)"
    assert header[1].startswith(f"{version}."), (
        f"the tests ran on Python {header[1]}, not {version}"
    )
