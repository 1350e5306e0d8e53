"""``python3 -m coh_rtc`` is the same program as the ``coh-rtc`` console script."""

import sys

from .cli import main

sys.exit(main())
