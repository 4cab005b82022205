# /// script
# requires-python = ">=3.11"
# dependencies = ["cruft>=2.16,<3"]
# ///
"""Merge a template release into this project, or link a project made without cruft.

    uv run scripts/update_template.py [--checkout VERSION] [cruft update options]
    uv run scripts/update_template.py link TEMPLATE_GIT_URL [--checkout VERSION]

The template has no tags. A released version (2026.12.0) stands for the commit that released
it: the first commit on the template's main line whose cookiecutter.json holds that
`_template_version`. A development version (2026.12.0.dev0) is refused, because every commit
between two releases renders it: give a commit instead. Any other --checkout (a commit, a
branch) goes to cruft as it is. `link` links at the version in .cookiecutter-answers.json.

cruft's own output goes to a log file. The script prints its verdict first, then the files
that need you: conflicts, rejected hunks (.rej) and the files cruft skipped without a .rej.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
CRUFT = "uvx --from 'cruft>=2.16,<3' cruft"
RELEASE = re.compile(r"\d{4}\.\d{1,2}\.\d+")
DEVELOPMENT = re.compile(r"\d{4}\.\d{1,2}\.\d+\.dev\d+")
# How git marks the two sides of a conflict, at the start of a line.
CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")
# What cruft prints before it falls back from a three-way merge to `git apply --reject`.
RETRY = "Retrying again with a different update strategy."
# Porcelain status codes of a path git left unmerged.
UNMERGED = {"DD", "AU", "UD", "UA", "DU", "AA", "UU"}

# What to do with each kind of file that needs you, then with the update.
RESOLVE_CONFLICT = (
    'In a conflict, keep what you need from both sides ("ours" is this project, "theirs" the '
    "template) and delete the marker lines."
)
RESOLVE_REJECTED = "Apply the hunks of a .rej file to the file next to it by hand, then delete it."
RESOLVE_SKIPPED = (
    "A skipped file got none of the template's change: `{cruft} diff` shows how it differs "
    "from the template now."
)
RESOLVE_DONE = (
    "Then `git add` the files, run the tests and commit. To abandon the update: "
    "git reset --hard HEAD, then delete what `git clean -n` lists."
)
# uv.lock is in [tool.cruft] skip, so an update never brings the template's new dependencies in.
RELOCK = "pyproject.toml changed and uv.lock is yours: run `uv lock` before `make install`."


class RefusalError(Exception):
    """A reason to stop, said in one line."""


def git_output(*args: str, cwd: Path = PROJECT) -> str:
    """Run git and return its output."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return result.stdout


def git(*args: str, cwd: Path = PROJECT) -> list[str]:
    """Run git and return its output lines."""
    return git_output(*args, cwd=cwd).splitlines()


def versions_in_history(repository: Path, path: str) -> list[tuple[str, str]]:
    """(commit, version) for each change of `_template_version` on the main line, oldest first."""
    changes: list[tuple[str, str]] = []
    commits = git("log", "--first-parent", "--reverse", "--format=%H", "--", path, cwd=repository)
    for commit in commits:
        try:
            shown = git_output("show", f"{commit}:{path}", cwd=repository)
            version = json.loads(shown).get("_template_version")
        except (subprocess.CalledProcessError, ValueError, AttributeError):
            continue  # deleted or not JSON in that commit: no version to read
        if isinstance(version, str) and (not changes or changes[-1][1] != version):
            changes.append((commit, version))
    return changes


def resolve(template: str, checkout: str, directory: str = "") -> tuple[str, int]:
    """The commit that released `checkout`, and how many commits render that version.

    Anything that is not a version is returned as it is, rendered by one commit.
    """
    if DEVELOPMENT.fullmatch(checkout):
        raise RefusalError(
            f"{checkout} is a development version, rendered by every commit between two "
            "releases: give a released version or a commit to --checkout"
        )
    if not RELEASE.fullmatch(checkout):
        return checkout, 1
    path = f"{directory}/cookiecutter.json" if directory else "cookiecutter.json"
    with tempfile.TemporaryDirectory() as scratch:
        clone = Path(scratch) / "template.git"
        try:
            git("clone", "--quiet", "--bare", template, str(clone), cwd=Path.cwd())
        except subprocess.CalledProcessError as error:
            reason = (error.stderr or "").strip().splitlines() or ["git clone failed"]
            message = f"cannot read the template's history at {template}: {reason[-1]}"
            raise RefusalError(message) from None
        changes = versions_in_history(clone, path)
        for index, (commit, version) in enumerate(changes):
            if version != checkout:
                continue
            # The release commit and the commits after it, up to the next version change.
            following = changes[index + 1][0] if index + 1 < len(changes) else "HEAD"
            (after,) = git(
                "rev-list", "--first-parent", "--count", f"{commit}..{following}", cwd=clone
            )
            return commit, int(after) + (following == "HEAD")
    released = [version for _, version in changes if RELEASE.fullmatch(version)]
    raise RefusalError(
        f"the template at {template} has no release {checkout}; "
        f"its releases: {', '.join(released) or 'none'}"
    )


def take_checkout(arguments: list[str]) -> tuple[str | None, list[str]]:
    """Split `--checkout VALUE` (or `-c VALUE`, `--checkout=VALUE`) from the other arguments."""
    checkout, rest = None, []
    remaining = iter(arguments)
    for argument in remaining:
        if argument in {"--checkout", "-c"}:
            checkout = next(remaining, None)
            if checkout is None:
                raise RefusalError(f"{argument} needs a version or a commit")
        elif argument.startswith("--checkout="):
            checkout = argument.partition("=")[2]
        else:
            rest.append(argument)
    return checkout, rest


def log_file() -> Path:
    """Where cruft's full output goes: inside .git, so that it never dirties the tree."""
    try:
        (name,) = git("rev-parse", "--git-path", "update_template.log")
    except subprocess.CalledProcessError:
        return Path(tempfile.gettempdir()) / f"update_template-{PROJECT.name}.log"
    return PROJECT / name


def run_cruft(arguments: list[str], log: Path) -> str:
    """Run cruft, keep its whole output in `log`, and return it; refuse if cruft failed."""
    # English messages from git, in the order printed, which the report reads; UTF-8 anyway.
    environment = os.environ | {"LC_ALL": "C", "PYTHONUNBUFFERED": "1", "PYTHONUTF8": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "cruft", *arguments],
        cwd=PROJECT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    log.write_text(result.stdout, encoding="utf-8")
    if result.returncode != 0:
        last = [line for line in result.stdout.splitlines() if line.strip()] or ["no output"]
        raise RefusalError(f"cruft {arguments[0]} failed: {last[-1].strip()} (full output: {log})")
    return result.stdout


def cruft_state() -> dict[str, object]:
    """The project's .cruft.json."""
    try:
        state = json.loads((PROJECT / ".cruft.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RefusalError(
            "no .cruft.json: link the project to its template first: "
            "uv run scripts/update_template.py link <template git URL>"
        ) from None
    except ValueError as error:
        raise RefusalError(f".cruft.json is not valid JSON: {error}") from None
    if not isinstance(state, dict):
        raise RefusalError(".cruft.json does not hold a JSON object")
    return state


def recorded_render(state: dict[str, object]) -> tuple[str, str]:
    """The template version and short commit that `state` records."""
    context = state.get("context")
    answers = context.get("cookiecutter") if isinstance(context, dict) else None
    version = answers.get("_template_version") if isinstance(answers, dict) else None
    commit = state.get("commit")
    return str(version or "unknown"), commit[:7] if isinstance(commit, str) else "unknown"


def skipped_files(output: str, prefix: str) -> dict[str, str]:
    """Files `git apply --reject` left out whole, without a .rej, each with git's reason."""
    _, retried, rejecting = output.partition(RETRY)
    if not retried:
        return {}
    checked = re.findall(r"^Checking patch (.+)\.\.\.$", rejecting, re.MULTILINE)
    applied = r"^(?:Applied patch (.+) cleanly\.|Applying patch (.+) with \d+ rejects?\.\.\.)$"
    done = {"".join(names) for names in re.findall(applied, rejecting, re.MULTILINE)}
    reasons = dict(re.findall(r"^error: (.+): (.+)$", rejecting, re.MULTILINE))
    return {
        name.removeprefix(prefix): reasons.get(name, "not applied")
        for name in checked
        if name not in done
    }


def has_conflict_markers(path: Path) -> bool:
    """Tell whether a text file has a line git writes around a conflict."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False  # deleted, a directory, or binary: nothing git would mark
    return any(line.startswith(CONFLICT_MARKERS) for line in lines)


def changed_files(prefix: str) -> list[tuple[str, str]]:
    """(status, path) of every path that differs from HEAD, untracked and ignored .rej included."""
    status_output = git_output("status", "--porcelain", "-z", "--untracked-files=all", "--", ".")
    changed: list[tuple[str, str]] = []
    remaining = iter(status_output.split("\0"))
    for entry in remaining:
        if not entry:
            continue
        status, name = entry[:2], entry[3:]
        if "R" in status or "C" in status:
            next(remaining, None)  # the path it was renamed or copied from
        changed.append((status, name.removeprefix(prefix)))
    # A .rej file must not hide behind a .gitignore pattern.
    listed = {name for _, name in changed}
    ignored = git("ls-files", "--others", "--ignored", "--exclude-standard", "--", "*.rej")
    changed += [("??", name) for name in ignored if name not in listed]
    return changed


def update(arguments: list[str]) -> int:
    """Run `cruft update`, then say what it applied and what needs you."""
    state = cruft_state()
    old_version, old_commit = recorded_render(state)
    try:
        git("rev-parse", "--verify", "--quiet", "HEAD")
    except subprocess.CalledProcessError:
        raise RefusalError("commit the project to git first: the update merges into it") from None
    checkout, rest = take_checkout(arguments)
    command = ["update", "--skip-apply-ask", *rest]
    if checkout is not None:
        directory = state.get("directory")
        commit, _ = resolve(
            str(state["template"]), checkout, directory if isinstance(directory, str) else ""
        )
        command += ["--checkout", commit]
    log = log_file()
    output = run_cruft(command, log)
    version, commit = recorded_render(cruft_state())

    (prefix,) = git("rev-parse", "--show-prefix") or [""]
    changed = changed_files(prefix)
    relinked = any(name == ".cruft.json" for _, name in changed)
    changed = [(status, name) for status, name in changed if name != ".cruft.json"]
    conflicted = sorted(
        name
        for status, name in changed
        if status in UNMERGED or has_conflict_markers(PROJECT / name)
    )
    rejected = sorted(name for _, name in changed if name.endswith(".rej"))
    skipped = [
        f"{name} ({reason})" for name, reason in sorted(skipped_files(output, prefix).items())
    ]
    # One letter per file, as `git status --short` gives it; an untracked file is new.
    applied = [
        f"{status.strip()[:1].replace('?', 'A')} {name}"
        for status, name in sorted(changed, key=lambda change: change[1])
        if name not in conflicted and name not in rejected
    ]

    move = f"Template {old_version} ({old_commit}) -> {version} ({commit})"
    attention = len(conflicted) + len(rejected) + len(skipped)
    if attention:
        print(f"{move}: {attention} file(s) need you.")
    elif applied:
        print(f"{move}: applied to {len(applied)} file(s), nothing to resolve.")
    elif relinked:
        print(f"{move}: no change outside skipped paths; commit .cruft.json.")
    else:
        print(f"Template {version} ({commit}): nothing changed, the project matches it.")
    for title, names in [
        ("Conflicts, between <<<<<<< ours and >>>>>>> theirs:", conflicted),
        ("Rejected hunks, to apply by hand:", rejected),
        ("Skipped by cruft, the template's change not applied:", skipped),
        ("Applied:", applied),
    ]:
        if names:
            print(title)
            print("\n".join(f"  {name}" for name in names))
    if any(name == "pyproject.toml" for _, name in changed) and (PROJECT / "uv.lock").exists():
        print(RELOCK)
    if attention:
        hints = [
            (conflicted, RESOLVE_CONFLICT),
            (rejected, RESOLVE_REJECTED),
            (skipped, RESOLVE_SKIPPED.format(cruft=CRUFT)),
        ]
        print("\n".join([hint for names, hint in hints if names] + [RESOLVE_DONE]))
    elif applied:
        entry = "Unreleased" if DEVELOPMENT.fullmatch(version) else version
        print(
            f"Next: read {entry} in the template's CHANGELOG.md for manual steps, review "
            "`git diff HEAD`, run the tests (uv run pytest), then commit."
        )
    print(f"cruft's full output: {log}")
    return 1 if attention else 0


def link(arguments: list[str]) -> int:
    """Link a project made with plain cookiecutter to the template, at its release."""
    checkout, rest = take_checkout(arguments)
    if len(rest) != 1 or rest[0].startswith("-"):
        raise RefusalError("usage: update_template.py link TEMPLATE_GIT_URL [--checkout VERSION]")
    (template,) = rest
    # cookiecutter's spelling of a git URL (git+file://, git+https://) is not git's.
    template = template.removeprefix("git+")
    if template.startswith("file://"):
        template = template.removeprefix("file://")
    if (PROJECT / ".cruft.json").exists():
        raise RefusalError("already linked (.cruft.json exists): update instead")
    try:
        recorded = json.loads((PROJECT / ".cookiecutter-answers.json").read_text(encoding="utf-8"))
    except OSError as error:
        raise RefusalError(f"cannot read .cookiecutter-answers.json: {error.strerror}") from None
    except ValueError as error:
        raise RefusalError(f".cookiecutter-answers.json is not valid JSON: {error}") from None
    answers = recorded.get("cookiecutter") if isinstance(recorded, dict) else None
    version = recorded.get("template_version") if isinstance(recorded, dict) else None
    if not isinstance(answers, dict) or not isinstance(version, str):
        raise RefusalError(".cookiecutter-answers.json lacks the answers or the template_version")
    if Path(template).exists():
        template = str(Path(template).resolve())  # a local clone, as cruft will record it
    checkout = checkout or version
    commit, renders = resolve(template, checkout)
    command = ["link", template, "--checkout", commit, "--no-input"]
    log = log_file()
    run_cruft([*command, "--extra-context", json.dumps(answers)], log)
    version, short = recorded_render(cruft_state())
    print(f"Linked to {template} at {version} ({short}).")
    if renders > 1:
        print(
            f"Note: {renders} template commits render {checkout}; this is the one that released "
            "it. If the project came from a later one, delete .cruft.json and link with "
            "--checkout <that commit>: from the wrong one, updates reject most hunks as .rej."
        )
    print(
        "Next: git add .cruft.json && git commit -m 'Link to the template'; "
        f"`{CRUFT} diff` then shows only your own changes."
    )
    print(f"cruft's full output: {log}")
    return 0


def main(arguments: list[str]) -> int:
    """Link when asked to, else update."""
    try:
        if arguments[:1] == ["link"]:
            return link(arguments[1:])
        return update(arguments)
    except RefusalError as refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
