import sys

from contimg.image.job.main import main

sys.exit(main())
