"""The names that link a span and its samples, written once for every side.

The agent puts them on spans and samples; local mode reads them back.
"""

from __future__ import annotations

#: The root span attribute holding the span id its samples are labelled with.
PROFILE_ID_ATTRIBUTE = "pyroscope.profile.id"

#: Sample labels of a span's samples: its root span's id (16 hex), name and trace id (32 hex).
SPAN_ID = "span_id"
# The process id on every sample (pyroscope-io's report_pid; the relay's under Stack).
PID = "pid"
SPAN_NAME = "span_name"
TRACE_ID = "trace_id"
SPAN_LABELS = frozenset((SPAN_ID, SPAN_NAME, TRACE_ID))
