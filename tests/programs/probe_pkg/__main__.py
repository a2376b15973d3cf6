"""``python -m probe_pkg``: the same probe as probe.py, run as a module's __main__."""

from pathlib import Path

_probe = Path(__file__).resolve().parent.parent / "probe.py"
exec(compile(_probe.read_text(), str(_probe), "exec"))
