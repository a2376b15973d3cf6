"""Prints what a program can see of how it was started, as JSON, then exits with argv's last int."""

import json
import os
import sys

report = {
    "name": __name__,
    "file": os.path.abspath(__file__) if "__file__" in globals() else None,
    "argv": sys.argv,
    "path": sys.path,
    "cwd": os.getcwd(),
    "sitecustomize_runs": os.environ.get("USER_SITECUSTOMIZE_RUNS"),
    "pythonpath": os.environ.get("PYTHONPATH"),
}
print(json.dumps(report))
code = sys.argv[-1]
sys.exit(int(code) if code.isdigit() else 0)
