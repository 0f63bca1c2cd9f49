"""What every benchmark records: the machine it ran on, and the result as JSON."""

from __future__ import annotations

import json
import os
import platform
import time


def machine_info(**extra: object) -> dict:
    """Python, platform and CPU count, plus what the caller adds (framework versions, GPU)."""
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"), **extra}


def report(result: dict, out: str | None) -> None:
    """Print ``result`` and, if ``out`` is given, write it there as JSON."""
    print(json.dumps(result, indent=2))
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=2)
