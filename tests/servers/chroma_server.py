"""A real Chroma server (`chroma run`, from the chromadb package) on a free port."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.server import free_port


class ChromaServer:
    def __init__(self, folder: Path) -> None:
        binary = Path(sys.executable).with_name("chroma")
        self.port = free_port()
        self.host = "127.0.0.1"
        self._log = (folder / "chroma.log").open("w")
        self.process = subprocess.Popen(
            [
                str(binary),
                "run",
                "--path",
                str(folder / "data"),
                "--host",
                self.host,
                "--port",
                str(self.port),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if (
                    httpx.get(f"http://{self.host}:{self.port}/api/v2/heartbeat", timeout=1).status_code
                    == 200
                ):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"chroma run did not start: see {folder / 'chroma.log'}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
        self._log.close()
