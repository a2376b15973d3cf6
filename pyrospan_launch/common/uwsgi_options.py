"""uWSGI's option names that both the launcher and the agent read."""

from __future__ import annotations

# Forks as os.fork() does (the GIL and the import lock held across, Python's fork hooks run
# in the child).  uWSGI reads every option from UWSGI_<NAME> too.
FORK_HOOKS = "py-call-uwsgi-fork-hooks"
FORK_HOOKS_VARIABLE = "UWSGI_PY_CALL_UWSGI_FORK_HOOKS"

# The options that start mules.  uWSGI 2.0 forks a mule without taking the GIL when told to
# run the fork hooks, and the mule then crashes in its first Python call (its random seed),
# respawned for ever.
MULES = ("mule", "mules", "farm")
