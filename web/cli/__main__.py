"""`python -m web.cli` is the `approvals` command."""

import sys

from .main import main

sys.exit(main())
