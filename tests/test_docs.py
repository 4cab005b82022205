"""The generated docs work as written: every Python snippet type-checks or runs, the steps succeed.

A snippet that is deliberately partial is skipped only when the line right above its
fence says why: `<!-- snippet: not checked, <reason> -->` (an HTML comment, so readers
never see it). Keep such exceptions rare.
"""

import asyncio
import re
import shutil
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.baking import bake_into, environment_without_virtualenv, run
from tests.makefile import make_targets
from tests.services import admin, migrate, throwaway_database
from tests.test_generation import SUPPORTED

FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
NOT_CHECKED = re.compile(r"<!-- snippet: not checked, (?P<reason>\S.*?) -->\s*\Z")
# A snippet that runs itself (`asyncio.run(main())` at the top level) is a script to run.
SCRIPT = re.compile(r"^asyncio\.run\(", re.MULTILINE)
# Every option on, so that every conditional section of the docs is there.
ANSWERS = {
    "use_prometheus": True,
    "use_opentelemetry": True,
    "use_sentry": True,
    "use_docker": True,
    "use_github_actions": True,
}
# An inline link or image, `[text](target)`; its target up to a space or the closing bracket.
LINK = re.compile(r"\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*$", re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
# `make <target>` in running text, or a command line of a shell block that starts with it.
MAKE = re.compile(r"(?:`|^)make ([a-z][\w-]*)", re.MULTILINE)


@dataclass(frozen=True)
class Snippet:
    """One fenced block of a Markdown file."""

    path: Path
    line: int
    language: str
    code: str
    # Why the snippet is not checked, from the comment above its fence; None: checked.
    not_checked: str | None

    @property
    def name(self) -> str:
        """A module name that says where the snippet comes from."""
        stem = re.sub(r"\W", "_", self.path.stem)
        return f"{stem}_line_{self.line}"


def snippets(path: Path, language: str) -> list[Snippet]:
    """The fenced blocks of `language` in the Markdown file at `path`."""
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        if match.group(1) != language:
            continue
        comment = NOT_CHECKED.search(text, 0, match.start())
        found.append(
            Snippet(
                path=path,
                line=text.count("\n", 0, match.start()) + 1,
                language=language,
                code=match.group(2),
                not_checked=comment.group("reason") if comment else None,
            )
        )
    return found


def documents(project: Path) -> list[Path]:
    """The project's Markdown docs: its README and anything under docs/."""
    return [project / "README.md", *sorted((project / "docs").rglob("*.md"))]


def prose(path: Path) -> str:
    """The Markdown of `path` without its fenced blocks and inline code, where nothing is a link."""
    return INLINE_CODE.sub("", FENCE.sub("", path.read_text()))


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of the Markdown file at `path`."""
    found: set[str] = set()
    for match in HEADING.finditer(FENCE.sub("", path.read_text())):
        title = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", match.group("title"))
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        # A repeated heading gets -1, -2, ... appended, as on GitHub.
        candidate, number = slug, 0
        while candidate in found:
            number += 1
            candidate = f"{slug}-{number}"
        found.add(candidate)
    return found


def local_links(path: Path) -> list[str]:
    """The targets of the links in `path` that point into the project: files and anchors."""
    return [
        match.group("target")
        for match in LINK.finditer(prose(path))
        if not EXTERNAL.match(match.group("target"))
    ]


def broken_links(project: Path) -> list[str]:
    """Every local link of the project's docs whose file or anchor does not exist."""
    broken = []
    for doc in documents(project):
        for target in local_links(doc):
            file, _, anchor = target.partition("#")
            destination = (doc.parent / file).resolve() if file else doc
            where = f"{doc.relative_to(project)}: {target}"
            if not destination.is_relative_to(project.resolve()) or not destination.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and (destination.suffix != ".md" or anchor not in anchors(destination)):
                broken.append(f"{where} (no such heading)")
    return broken


def reachable_docs(project: Path) -> set[Path]:
    """The Markdown files a reader reaches from README.md by following links."""
    seen: set[Path] = set()
    todo = [(project / "README.md").resolve()]
    while todo:
        doc = todo.pop()
        if doc in seen or doc.suffix != ".md" or not doc.is_file():
            continue
        seen.add(doc)
        todo.extend(
            (doc.parent / target.partition("#")[0]).resolve()
            for target in local_links(doc)
            if target.partition("#")[0]
        )
    return seen


def package_of(project: Path) -> str:
    """The import name of a baked project's package."""
    (package,) = [path.name for path in (project / "src").iterdir() if path.is_dir()]
    return package


def python_snippets(project: Path) -> list[Snippet]:
    """Every Python snippet of the project's docs."""
    return [snippet for path in documents(project) for snippet in snippets(path, "python")]


def section(readme: Path, title: str) -> str:
    """The text of the README section headed `## title`, up to the next `## ` heading."""
    text = readme.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def shell_blocks(text: str) -> list[str]:
    """The `sh` blocks of a piece of Markdown."""
    return [match.group(2) for match in FENCE.finditer(text) if match.group(1) == "sh"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with every option on, installed with its dev tools, once for this module."""
    project = bake_into(tmp_path_factory.mktemp("docs"), **ANSWERS)
    run(["uv", "sync", "--quiet"], cwd=project, env=environment_without_virtualenv())
    return project


@pytest.fixture
def clean_env() -> dict[str, str]:
    """An environment with none of the developer's database settings."""
    return {
        name: value
        for name, value in environment_without_virtualenv().items()
        if not name.startswith(("DATABASE_", "DATABASES__", "PG"))
    }


@pytest.fixture(params=list(SUPPORTED), scope="module")
def baked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project per supported option set, not installed: for checks that only read."""
    return bake_into(tmp_path_factory.mktemp(request.param), **SUPPORTED[request.param])


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with every option on, not installed: the docs the snippet tests check."""
    return bake_into(tmp_path_factory.mktemp("everything"), **ANSWERS)


def test_the_link_checker_finds_missing_files_and_headings(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## The `db` commands\n\n## Twice\n\n## Twice\n")
    (tmp_path / "README.md").write_text(
        "[a](docs/a.md) [b](docs/a.md#the-db-commands) [c](docs/a.md#twice-1)"
        " [d](https://example.com/x.md) `[e](nowhere.md)`\n\n```text\n[f](nowhere.md)\n```\n"
        "[g](docs/b.md) [h](docs/a.md#nowhere) [i](#title) [j](../outside.md)\n"
    )
    assert broken_links(tmp_path) == [
        "README.md: docs/b.md (no such file)",
        "README.md: docs/a.md#nowhere (no such heading)",
        "README.md: #title (no such heading)",
        "README.md: ../outside.md (no such file)",
    ]


def test_every_local_link_and_anchor_resolves(baked: Path) -> None:
    assert any("#" in target for doc in documents(baked) for target in local_links(doc))
    assert broken_links(baked) == []


def test_every_doc_is_reached_from_the_readme(baked: Path) -> None:
    docs = {path.resolve() for path in documents(baked)}
    assert len(docs) > 1, "no docs/ folder: the template's reference has moved"
    assert docs - reachable_docs(baked) == set()


def test_the_readme_is_the_teams_and_the_docs_the_templates(baked: Path) -> None:
    skip = tomllib.loads((baked / "pyproject.toml").read_text())["tool"]["cruft"]["skip"]
    assert "README.md" in skip
    assert not [path for path in skip if path == "docs" or path.startswith("docs/")]
    # Short enough to be a front page the team rewrites; the reference lives in docs/.
    readme = (baked / "README.md").read_text()
    assert len(readme.splitlines()) < 80
    assert "## Quick start" in readme


def test_every_make_target_the_docs_name_exists(baked: Path) -> None:
    named = {target for doc in documents(baked) for target in MAKE.findall(doc.read_text())}
    assert "check" in named
    assert named - set(make_targets(baked)) == set()


def test_the_checked_snippets_cover_every_option_set(baked: Path, everything: Path) -> None:
    """The snippet tests use one project; every option set's snippets must be among its own."""
    checked = {snippet.code for snippet in python_snippets(everything)}
    own, reference = package_of(baked), package_of(everything)
    for snippet in python_snippets(baked):
        code = re.sub(rf"\b{own}\b", reference, snippet.code)
        assert code in checked, f"{snippet.name} is not in the checked project's docs"


def test_the_skip_convention_is_read_from_the_line_above_the_fence(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "Text.\n\n<!-- snippet: not checked, shows one line of a larger file -->\n"
        "```python\nx = 1\n```\n\n```python\ny = 2\n```\n\n```sh\nls\n```\n"
    )
    found = snippets(readme, "python")
    assert [(s.line, s.code, s.not_checked) for s in found] == [
        (4, "x = 1\n", "shows one line of a larger file"),
        (8, "y = 2\n", None),
    ]


@pytest.mark.slow
def test_every_python_snippet_type_checks(project: Path, tmp_path: Path) -> None:
    checked = [snippet for snippet in python_snippets(project) if snippet.not_checked is None]
    assert checked, "the docs have no Python snippet to check: is the fence parser broken?"
    files = []
    for snippet in checked:
        file = tmp_path / f"{snippet.name}.py"
        file.write_text(snippet.code)
        files.append(str(file))
    # The project's own strict configuration, plugins and source path.
    result = subprocess.run(
        ["uv", "run", "--no-sync", "mypy", "--config-file", "pyproject.toml", *files],
        cwd=project,
        env=environment_without_virtualenv(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


@pytest.mark.slow
def test_every_script_snippet_runs_against_postgresql(
    project: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    scripts = [
        snippet
        for snippet in python_snippets(project)
        if snippet.not_checked is None and SCRIPT.search(snippet.code)
    ]
    assert scripts, "the docs have no runnable script: is the convention still asyncio.run?"
    for snippet in scripts:
        with throwaway_database("docs_script") as name:
            env = clean_env | {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}"}
            migrate(project, env)
            script = tmp_path / f"{snippet.name}.py"
            script.write_text(snippet.code)
            # From an empty folder: nothing but the environment configures it.
            result = run(
                [str(project / ".venv" / "bin" / "python"), str(script)], cwd=tmp_path, env=env
            )
            assert "Traceback" not in result.stderr, f"{snippet.name}:\n{result.stderr}"


@pytest.fixture
def new_migrations(project: Path) -> Iterator[None]:
    """Delete the migration files a test writes, so that the project's head stays the same."""
    versions = project / "migrations" / "versions"
    before = set(versions.iterdir())
    yield
    for path in set(versions.iterdir()) - before:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


@pytest.mark.slow
@pytest.mark.usefixtures("new_migrations")
def test_the_quick_start_and_migration_steps_run_as_typed(
    project: Path, clean_env: dict[str, str]
) -> None:
    docs = project / "docs"
    package = project.name.replace("-", "_")
    (postgres,) = [
        block
        for block in shell_blocks(section(docs / "development.md", "Running locally"))
        if "DATABASE_URL" in block
    ]
    (migrations, *_) = shell_blocks((docs / "migrations.md").read_text())
    # The steps as typed, on a database of this run's own instead of the documented name,
    # and without `serve`, which would run until stopped (the server tests cover it).
    assert f"/{package}\n" in postgres
    name = f"docs_quick_start_{uuid.uuid4().hex[:10]}"
    steps = [line for line in postgres.replace(package, name).splitlines() if " serve" not in line]
    assert len(steps) == len(postgres.splitlines()) - 1
    versions = project / "migrations" / "versions"
    before = set(versions.glob("*.py"))
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", "\n".join([*steps, migrations])],
            cwd=project,
            env=clean_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr
        # `revision --autogenerate` wrote its file; the models match, so nothing but its header.
        (written,) = set(versions.glob("*.py")) - before
        assert "def upgrade() -> None:" in written.read_text()
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.slow
def test_a_domain_registered_like_the_first_passes_lint(project: Path) -> None:
    package = project / "src" / project.name.replace("-", "_")
    domains = package / "domains.py"
    original = domains.read_text()
    (items_line,) = [
        line for line in original.splitlines() if ".items" in line and "import" in line
    ]
    domain = package / "orders"
    domain.mkdir()
    (domain / "__init__.py").write_text('"""Orders."""\n')
    (domain / "router.py").write_text(
        '"""Order routes."""\n\nfrom fastapi import APIRouter\n\nrouter = APIRouter()\n'
    )
    try:
        # A second domain, registered the way the first is, right below it.
        registered = original.replace(
            items_line, f"{items_line}\n{items_line.replace('items', 'orders')}"
        ).replace("(items_router,)", "(items_router, orders_router)")
        assert "router as orders_router\n" in registered, registered
        assert "(items_router, orders_router)" in registered, registered
        domains.write_text(registered)
        for check in (["ruff", "check"], ["ruff", "format", "--check"]):
            run(
                ["uv", "run", "--no-sync", *check, str(domains)],
                cwd=project,
                env=environment_without_virtualenv(),
            )
    finally:
        domains.write_text(original)
        shutil.rmtree(domain)
