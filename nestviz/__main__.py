"""``python -m nestviz`` runs the command-line interface."""

from .cli import main

main()
