"""Burns a little CPU without OpenTelemetry (span linking never starts), prints ``ready``
and sleeps until a signal ends it."""

import time

end = time.process_time() + 0.05
while time.process_time() < end:
    pass
print("ready", flush=True)
time.sleep(30)
