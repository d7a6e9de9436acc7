"""Package layout that pyproject.toml cannot express: plugins/ installs as pycoredns.plugins.

The product wheel holds only `pycoredns` and `pycoredns.plugins`; the conformance suite and the
Kubernetes API test server are their own distribution, built from conformance/pyproject.toml.
"""

from setuptools import find_packages, setup

packages = find_packages(include=["pycoredns", "pycoredns.*"])
packages += ["pycoredns.plugins"] + [f"pycoredns.plugins.{p}" for p in find_packages("plugins")]

setup(packages=packages, package_dir={"pycoredns.plugins": "plugins"})
