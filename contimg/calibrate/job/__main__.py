"""``python -m contimg.calibrate.job``: the calibrate child job (see :mod:`contimg.calibrate.job.main`)."""

import sys

from contimg.calibrate.job.main import main

sys.exit(main())
