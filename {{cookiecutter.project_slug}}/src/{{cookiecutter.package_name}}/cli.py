"""The service's command line: check the configuration and the database, then serve."""

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

from {{ cookiecutter.package_name }}.infrastructure.config import SettingsError, load_settings
from {{ cookiecutter.package_name }}.infrastructure.database import (
    DatabaseUnavailableError,
    wait_for_database,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = argparse.ArgumentParser(prog="{{ cookiecutter.project_slug }}", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "1")),
        help="worker processes, each with its own engine and pool (default: $WEB_CONCURRENCY or 1)",
    )
    serve.add_argument(
        "--reload", action="store_true", help="restart on code changes (development)"
    )
    args = parser.parse_args(argv)

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    logging.getLogger("{{ cookiecutter.package_name }}").addHandler(handler)
    logging.getLogger("{{ cookiecutter.package_name }}").setLevel(logging.INFO)

    try:
        settings = load_settings()
        if not settings.uses_dev_sqlite:
            # Fail here, in one line, rather than in every worker with a traceback.
            asyncio.run(wait_for_database(settings))
    except SettingsError as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    except DatabaseUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    # A factory, so that every worker process builds its own app and engine.
    uvicorn.run(
        "{{ cookiecutter.package_name }}.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=None if args.reload else args.workers,
        reload=args.reload,
    )
    return 0
