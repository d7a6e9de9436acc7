"""The plugins shipped with pycoredns (installed as pycoredns.plugins)."""
