"""Remove the files of options that were not chosen, then print the next steps.

Offline and deterministic on purpose: `cruft update` re-renders the template
and merges the result, so the same answers must always give the same bytes.
"""

import shlex
import shutil
import sys
import tempfile
from pathlib import Path

# Which files belong to each optional feature; a feature that was not chosen
# has its files removed, so the project holds only what it uses.
OPTIONAL_FILES = {
    "use_docker": ["Dockerfile", ".dockerignore", "compose.yaml"],
    "use_github_actions": [".github"],
    "use_prometheus": [
        "src/{{ cookiecutter.package_name }}/metrics.py",
        "tests/test_metrics.py",
    ],
}
CHOSEN = {
    "use_docker": {{ cookiecutter.use_docker }},
    "use_github_actions": {{ cookiecutter.use_github_actions }},
    "use_prometheus": {{ cookiecutter.use_prometheus }},
}


def remove_unchosen() -> None:
    """Delete every file or folder listed for an option that is off."""
    for option, paths in OPTIONAL_FILES.items():
        if CHOSEN[option]:
            continue
        for name in paths:
            path = Path(name)
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def rendered_for_cruft_to_compare() -> bool:
    """Tell whether this is cruft's scratch render for an update or a diff, not a new project."""
    # cruft records the template commit in its context; its update and diff render each
    # version into a fresh temporary directory, where `cruft create` renders where asked.
    by_cruft = "{{ cookiecutter.get('_commit', '') }}" != ""
    scratch = Path.cwd().resolve().parent.parent == Path(tempfile.gettempdir()).resolve()
    return by_cruft and scratch


def next_steps() -> str:
    """What to do with the new project, from its own directory."""
    return f"""
Created {{ cookiecutter.project_slug }}. Next steps, with uv (https://docs.astral.sh/uv/):

  cd {shlex.quote(str(Path.cwd()))}
  uv run {{ cookiecutter.project_slug }} serve
      serves http://127.0.0.1:8000 (API docs at /docs) on a local SQLite file, nothing to set up
  uv run pytest
      runs the tests on PostgreSQL: the server at TEST_DATABASE_URL, else a throwaway one
      if PostgreSQL's server programs are installed (see "Quick start" in README.md)
  git init && git add . && git commit -m "Generate from template"
      starts the history that template updates are merged into

Then read docs/README.md: configuration, pool profiles, how to add a domain.
"""


remove_unchosen()
if not rendered_for_cruft_to_compare():
    # stderr: `cruft diff` renders the template too, and its stdout must stay a clean patch.
    print(next_steps(), file=sys.stderr)
