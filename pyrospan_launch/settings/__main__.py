"""``python -m pyrospan_launch.settings``: print the README's configuration tables."""

from __future__ import annotations

import sys

from pyrospan_launch.settings import tables

if __name__ == "__main__":
    sys.stdout.write(tables.markdown())
