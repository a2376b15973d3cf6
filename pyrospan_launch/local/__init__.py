"""Local mode: span profiles with no backend at all (``pyrospan-run --local``).

The launcher runs the receiver on 127.0.0.1, points both signals at it and runs the
program as its child.  One small module per job:

* :mod:`~pyrospan_launch.local.store` - spans and CPU samples in SQLite (WAL, thread-safe).
* :mod:`~pyrospan_launch.local.aggregate` - flame graph trees, self time, percentiles.
* :mod:`~pyrospan_launch.local.views` - the documents the page, report and summary show.
* :mod:`~pyrospan_launch.local.page` - the live page's routes on the receiver's server.
* :mod:`~pyrospan_launch.local.html` - the self-contained HTML (live page and report).
* :mod:`~pyrospan_launch.local.pprof` - per-span gzip pprof files.
* :mod:`~pyrospan_launch.local.summary` - the terminal summary.
* :mod:`~pyrospan_launch.local.environment` - the child's environment in local mode.
* :mod:`~pyrospan_launch.local.supervisor` - runs the child, forwards SIGINT/SIGTERM.
* :mod:`~pyrospan_launch.local.modes` - ``--local``, ``--serve`` and ``--render``.

Nothing is imported here: the launcher loads this package only when local mode is used.
"""
