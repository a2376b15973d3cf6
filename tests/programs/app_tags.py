"""The app tags its own samples: ``tag_wrapper`` with a 3,000-character value, and with 40 tags.

Prints ``done`` when both tagged stretches of CPU are over.
"""

from __future__ import annotations

import time

import pyroscope


def burn_long_tag(seconds: float) -> int:
    count = 0
    end = time.process_time() + seconds
    while time.process_time() < end:
        count += 1
    return count


def burn_many_tags(seconds: float) -> int:
    count = 0
    end = time.process_time() + seconds
    while time.process_time() < end:
        count += 1
    return count


with pyroscope.tag_wrapper({"customer": "c" * 3000}):
    burn_long_tag(0.6)
many = {f"tag{i:02d}": str(i) for i in range(40)}
with pyroscope.tag_wrapper(many):
    burn_many_tags(0.6)
pyroscope.add_thread_tag("region", "中" * 800)
burn_long_tag(0.3)
pyroscope.remove_thread_tag("region", "中" * 800)
print("done", flush=True)
