"""The command line's larger subcommands, one module each; `serve` lives in cli.py."""

from typing import Final

# The console script's name, for the commands' advice ("run `<command> db upgrade`").
COMMAND: Final = "{{ cookiecutter.project_slug }}"
