"""Remove the files of options that were not chosen, then print the next steps.

Offline and deterministic on purpose: `cruft update` re-renders the template
and merges the result, so the same answers must always give the same bytes.
"""

import shutil
import sys
from pathlib import Path

# Which files belong to each optional feature; a feature that was not chosen
# has its files removed, so the project holds only what it uses.
OPTIONAL_FILES = {
    "use_docker": ["Dockerfile", ".dockerignore", "compose.yaml"],
    "use_github_actions": [".github"],
}
CHOSEN = {
    "use_docker": {{ cookiecutter.use_docker }},
    "use_github_actions": {{ cookiecutter.use_github_actions }},
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


remove_unchosen()
print(
    """
Created {{ cookiecutter.project_slug }}. Next steps:

  cd {{ cookiecutter.project_slug }}
  git init && git add . && git commit -m "Generate from template"
  uv run {{ cookiecutter.project_slug }} serve
      starts the service on a local SQLite file, no setup needed
  uv run pytest
      runs the tests; they need PostgreSQL (TEST_DATABASE_URL, see README.md)

Then read README.md for configuration and pool profiles.
""",
    # stderr: `cruft diff` renders the template too, and its stdout must stay a clean patch.
    file=sys.stderr,
)
