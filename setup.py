"""Package layout that pyproject.toml cannot express: plugins/ installs as pycoredns.plugins."""

from setuptools import find_packages, setup

packages = find_packages(include=["pycoredns", "pycoredns.*", "conformance", "conformance.*"])
packages += ["pycoredns.plugins"] + [f"pycoredns.plugins.{p}" for p in find_packages("plugins")]

setup(packages=packages, package_dir={"pycoredns.plugins": "plugins"})
