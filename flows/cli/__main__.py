"""`python -m flows.cli`: the same as the `chatsift` command."""

import sys

from flows.cli import main

sys.exit(main())
