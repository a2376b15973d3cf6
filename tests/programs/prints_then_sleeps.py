"""Print `ready`, then sleep: a signal sent on reading `ready` lands as print() ends.

On Python 3.14 such a signal's Python handler waits until the sleep ends (CPython does not
check for signals there), so only pyrospan-run's signal watch makes SIGTERM end it at once.
"""

import time

print("ready", flush=True)
time.sleep(60)
