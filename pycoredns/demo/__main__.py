"""`python -m pycoredns.demo`."""

import sys

from . import main

sys.exit(main())
