"""The command line's larger subcommands, one module each; `serve` lives in cli.py."""
