import sys

from contimg.convert.job.main import main

sys.exit(main())
