"""``python -m stream_processors.cli``: the same as the ``driftline`` command."""

import sys

from stream_processors.cli import main

sys.exit(main())
