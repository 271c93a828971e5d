"""The ``xlrun`` command line: thin commands that parse, call the library and print."""

from xlrun.cli.main import main

__all__ = ["main"]
