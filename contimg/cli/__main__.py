"""``python -m contimg.cli``: the ``contimg`` command line (see :func:`contimg.cli.main`)."""

import sys

from contimg.cli import main

sys.exit(main())
