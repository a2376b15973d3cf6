"""CPU in Python's bracketed code objects: <module>, <lambda>, <listcomp>, <genexpr>.

One root span, ``brackets``, burns CPU directly at module level, in a lambda, in a list
comprehension (its own frame up to Python 3.11) and in a generator expression.
"""

from __future__ import annotations

import time

from opentelemetry import trace

tracer = trace.get_tracer("bracket_names")


def spin(seconds: float) -> int:
    count = 0
    end = time.process_time() + seconds
    while time.process_time() < end:
        count += 1
    return count


with tracer.start_as_current_span("brackets"):
    end = time.process_time() + 0.3
    while time.process_time() < end:  # CPU in <module> itself
        pass
    (lambda: spin(0.3))()
    [spin(0.1) for _ in range(3)]
    sum(spin(0.1) for _ in range(3))
print("done", flush=True)
