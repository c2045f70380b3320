import sys

from contimg.calibrate.job.main import main

sys.exit(main())
