import gc
import sys

# The imports below (trio, lark and the Corefile grammar, dnslib, the core) make ~50,000 tracked
# objects and no garbage: with the collector on they paid ~80 young and a few middle collections,
# ~8-11 ms of CPU before the first list request of a cluster DNS start. cli.tune_gc sets the serving
# thresholds later.
gc.disable()
from .cli import main  # noqa: E402

gc.enable()
sys.exit(main())
