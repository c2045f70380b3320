import sys

from contimg.cli import main

sys.exit(main())
