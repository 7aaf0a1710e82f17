"""``python -m nestviz`` runs the command-line interface."""

try:
    from .cli.app import main
except KeyboardInterrupt:  # Ctrl-C while the command line itself loads: no traceback
    import sys

    sys.stderr.write("nestviz: interrupted\n")
    sys.exit(130)

main()
