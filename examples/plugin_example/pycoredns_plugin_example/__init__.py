"""An example third-party pycoredns plugin package: `count`, `slow` and `hello` (see README.md)."""
