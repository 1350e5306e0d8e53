"""``python -m cas_tool`` (the same as the ``cas-tool`` console script)."""
import sys

from cas_tool.cli import main

sys.exit(main())
