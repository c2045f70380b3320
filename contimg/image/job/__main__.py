"""``python -m contimg.image.job``: the image child job (see :mod:`contimg.image.job.main`)."""

import sys

from contimg.image.job.main import main

sys.exit(main())
