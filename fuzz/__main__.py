"""`python -m fuzz`: the CLI fuzzer (fuzz/cli_fuzz.py)."""

import sys

from fuzz.cli_fuzz import main

sys.exit(main())
