"""Coverage-guided fuzz targets (atheris): the packet path and the Corefile parser."""
