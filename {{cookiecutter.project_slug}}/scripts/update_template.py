# /// script
# requires-python = ">=3.11"
# dependencies = ["cruft>=2.16,<3"]
# ///
"""Merge the newest template into this project, and fail loudly if the merge needs you.

    uv run scripts/update_template.py [cruft update options]

`cruft update` exits 0 even when its merge left conflict markers or `.rej` files,
so this script looks for them itself, names each file and exits 1.
"""

import json
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
# How git marks the two sides of a conflict, at the start of a line.
CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")

RESOLVE = """
In each file keep what you need from both sides ("ours" is this project, "theirs"
the template) and delete the markers, or apply a .rej hunk by hand and delete the
.rej file; then `git add` the files, run the tests and commit. To abandon the
update: git reset --hard HEAD, then delete the new files that `git clean -n` lists."""


def git(*args: str) -> list[str]:
    """Run git in the project and return its output lines."""
    result = subprocess.run(["git", *args], cwd=PROJECT, capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def has_conflict_markers(path: Path) -> bool:
    """Tell whether a text file has a line git writes around a conflict."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False  # deleted, a directory, or binary: nothing git would mark
    return any(line.startswith(CONFLICT_MARKERS) for line in lines)


def unresolved() -> list[str]:
    """List the files the merge left for a person: conflicted, marked, or rejected hunks."""
    found = set(git("diff", "--name-only", "--relative", "--diff-filter=U"))
    changed = set(git("diff", "--name-only", "--relative", "HEAD"))
    changed |= set(git("ls-files", "--others", "--exclude-standard"))
    found |= {name for name in changed if has_conflict_markers(PROJECT / name)}
    # Ignored files too: a .rej file must not hide behind a .gitignore pattern.
    found |= set(git("ls-files", "--others", "--", "*.rej"))
    return sorted(found)


def template_version() -> str | None:
    """The template version recorded in the answers file, if there is one."""
    try:
        answers = json.loads((PROJECT / ".cookiecutter-answers.json").read_text())
    except (OSError, ValueError):
        return None
    version = answers.get("template_version")
    return version if isinstance(version, str) else None


def main(arguments: list[str]) -> int:
    """Run `cruft update` with `arguments`, then check and summarise what it did."""
    if not (PROJECT / ".cruft.json").is_file():
        print(
            "error: no .cruft.json: link the project to its template first, see README.md",
            file=sys.stderr,
        )
        return 2
    try:
        git("rev-parse", "--verify", "HEAD")
    except subprocess.CalledProcessError:
        print(
            "error: commit the project to git first: the update merges into a clean tree",
            file=sys.stderr,
        )
        return 2
    before = template_version()
    command = [sys.executable, "-m", "cruft", "update", "--skip-apply-ask", *arguments]
    update = subprocess.run(command, cwd=PROJECT, check=False)
    if update.returncode != 0:
        print(f"error: cruft update exited with {update.returncode}", file=sys.stderr)
        return update.returncode

    if conflicted := unresolved():
        print("error: the update left conflicts to resolve by hand:", file=sys.stderr)
        for name in conflicted:
            print(f"  {name}", file=sys.stderr)
        print(RESOLVE, file=sys.stderr)
        return 1

    changes = git("diff", "--stat", "--relative", "HEAD")
    if not changes:
        print("Nothing changed: the project already matches the template.")
        return 0
    print("\n".join(changes))
    after = template_version()
    if after != before:
        print(f"\nTemplate {before} -> {after}: read its CHANGELOG.md for manual steps.")
    print("\nReview with `git diff HEAD`, run the tests: uv run pytest, then commit.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
