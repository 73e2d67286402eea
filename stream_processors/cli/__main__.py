"""``python -m stream_processors.cli``: the same as the ``driftline`` command."""

import sys

from stream_processors.cli import main

if __name__ == "__main__":
    sys.exit(main())
