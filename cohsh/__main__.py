"""``python -m cohsh`` runs the CLI (SPEC §1.1: host CLIs may be run as modules)."""
import sys

from cohsh.cli import main

sys.exit(main())
