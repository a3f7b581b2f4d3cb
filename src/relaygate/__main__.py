"""`python -m relaygate` runs the CLI."""

import sys

from relaygate.cli import main

sys.exit(main())
