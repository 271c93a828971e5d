"""``python -m xlrun`` runs the CLI."""

from xlrun.cli import main

main()
