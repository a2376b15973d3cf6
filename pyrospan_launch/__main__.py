"""``python -m pyrospan_launch``: the same launcher as the ``pyrospan-run`` console script."""

from __future__ import annotations

from pyrospan_launch.launcher.launch import main

if __name__ == "__main__":
    main(prog_name="pyrospan-run")
