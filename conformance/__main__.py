"""`python -m conformance` from a source checkout: the same as `python -m pycoredns_conformance`."""

import sys

from pycoredns_conformance.__main__ import main

sys.exit(main())
