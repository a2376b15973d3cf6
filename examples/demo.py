"""Run examples/shop.py under pyrospan-run against a local receiver and show the links.

No Pyroscope or Tempo needed: the receiver decodes exactly what they would receive.  For
each root span it prints the ``pyroscope.profile.id`` attribute and the functions that
used the most CPU in the samples labelled with that span.

    python examples/demo.py        (or: make demo)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from pyrospan_launch.receiver import Receiver

HERE = Path(__file__).resolve().parent


def main() -> int:
    launcher = Path(sys.executable).with_name("pyrospan-run")
    with Receiver() as receiver:
        env = {
            **os.environ,
            "OTEL_SERVICE_NAME": "shop",
            "PYROSCOPE_SERVER_ADDRESS": receiver.url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "PYROSCOPE_UPLOAD_INTERVAL": "1",
        }
        command = [str(launcher), sys.executable, str(HERE / "shop.py")]
        print("$ pyrospan-run python examples/shop.py", flush=True)
        status = subprocess.call(command, env=env)
        # The program sent its last profile window and span batch as it exited.
        receiver.wait_for(lambda r: len(r.root_spans()) >= 6, timeout=15)
        print()
        print(f"{'root span':<16} {'pyroscope.profile.id':<20} {'CPU ms':>7}  hottest function")
        for span in receiver.root_spans():
            samples = receiver.samples_with_label("span_id", span.span_id)
            cpu: Counter[str] = Counter()
            for sample in samples:
                cpu[sample.leaf] += sample.values[0]
            hottest = cpu.most_common(1)[0][0] if cpu else "(no samples yet)"
            print(
                f"{span.name:<16} {span.attributes.get('pyroscope.profile.id', '-')!s:<20} "
                f"{sum(cpu.values()) / 1e6:>7.0f}  {hottest}"
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
