"""On PYTHONPATH, stands for an environment without pyroscope-io: the import fails as then."""

raise ModuleNotFoundError("No module named 'pyroscope'", name="pyroscope")
