"""``python -m bench [--quick] [--out DIR]``: see bench/README.md."""

import sys

from bench.cli import main

sys.exit(main())
