"""``python -m contimg.convert.job``: the conversion child job (see :mod:`contimg.convert.job.main`)."""

import sys

from contimg.convert.job.main import main

sys.exit(main())
