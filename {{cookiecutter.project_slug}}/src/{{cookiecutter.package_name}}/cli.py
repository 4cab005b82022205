"""The service's command line: `serve`, and the `db` commands from commands/db.py."""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import uvicorn

from {{ cookiecutter.package_name }}.commands.db import add_db_commands, run_db_command
from {{ cookiecutter.package_name }}.infrastructure.capacity import ConnectionBudgetError
from {{ cookiecutter.package_name }}.infrastructure.config import load_settings
from {{ cookiecutter.package_name }}.infrastructure.database import DatabaseUnavailableError
from {{ cookiecutter.package_name }}.infrastructure.extra_databases import wait_for_databases
from {{ cookiecutter.package_name }}.infrastructure.settings_errors import SettingsError
from {{ cookiecutter.package_name }}.logs import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="address to listen on (default: $HOST or 127.0.0.1)")
    serve.add_argument("--port", help="port to listen on (default: $PORT or 8000)")
    serve.add_argument(
        "--workers",
        help="worker processes, each with its own engine and pool (default: $WEB_CONCURRENCY or 1)",
    )
    serve.add_argument(
        "--reload", action="store_true", help="restart on code changes (development)"
    )
    db = commands.add_parser("db", help="migrate, check, inspect or wait for the database")
    add_db_commands(db)
    args = parser.parse_args(argv)
    if args.command == "db":
        return run_db_command(args)
    # Options become environment variables, so that they are validated like
    # the rest and every worker process reads the same settings.
    options = {"HOST": args.host, "PORT": args.port, "WEB_CONCURRENCY": args.workers}
    for variable, value in options.items():
        if value is not None:
            os.environ[variable] = value

    try:
        settings = load_settings()
        configure_logging(settings.logs)
        # Fail here, in one line, rather than in every worker with a traceback;
        # success is logged once, by the application that then connects.
        asyncio.run(wait_for_databases(settings.database_configs(), announce=False))
    except SettingsError as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    except (DatabaseUnavailableError, ConnectionBudgetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    # A factory, so that every worker process builds its own app and engine.
    uvicorn.run(
        "{{ cookiecutter.package_name }}.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=None if args.reload else settings.web_concurrency,
        reload=args.reload,
        # On SIGTERM, requests in flight get this long to finish before they
        # are cancelled and the pools closed; see docs/operations.md.
        timeout_graceful_shutdown=settings.graceful_shutdown_timeout,
        # Logging is configured from the settings (logs.py), in this process
        # and again in each worker's create_app; uvicorn's access line is
        # replaced by RequestLogMiddleware's, so each request is logged once.
        log_config=None,
        access_log=False,
        # asyncio's loop rather than uvloop: libuv accepts one connection per
        # loop turn, so under load new connections queue behind every request
        # in flight; asyncio accepts every waiting connection at once.
        loop="asyncio",
        http="httptools",
    )
    return 0
