"""A fake Gemini server in its own process (the load generator keeps the benchmark's process busy):
answers like the real API over HTTP, and fails a share of calls with 503, chosen at random.

    python -m bench.fake_llm FAILURE_RATE   # prints its URL on the first line
"""

from __future__ import annotations

import random
import sys
import threading

from fakes.gemini_server import FakeGemini
from fakes.llm_server import Reply

ANSWER = "Based on the passages, the study reports a measurable effect under the stated conditions."


def main(failure_rate: float) -> None:
    chance = random.Random(20261121)
    ok, failing = Reply(text=ANSWER, delay=0.05), Reply(status=503)
    fake = FakeGemini()
    fake.pick = lambda: failing if chance.random() < failure_rate else ok
    fake.start()
    sys.stdout.write(fake.url + "\n")
    sys.stdout.flush()
    threading.Event().wait()


if __name__ == "__main__":
    main(float(sys.argv[1]))
