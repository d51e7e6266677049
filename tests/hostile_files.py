"""Knowledge files an attacker (or an accident) would put in the knowledge folder, generated on the spot."""

from __future__ import annotations

import os
import random
import zlib
from pathlib import Path

from tests.test_formats import minimal_pdf

# An environment value that must never reach a visitor or a log line (the service process holds it).
ENV_SECRET = "pg-password-Zq81vX0rT"


def pdf_with_stream(content: bytes, compress: bool = True) -> bytes:
    """A one-page PDF whose page content is `content` (Flate-compressed: a few hundred KB can inflate to
    more than a hundred MB), with a correct cross-reference table."""
    data = zlib.compress(content, 9) if compress else content
    flate = b" /Filter /FlateDecode" if compress else b""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d%s >>\nstream\n" % (len(data), flate) + data + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


def pdf_bomb(megabytes: int = 113) -> bytes:
    """Text-drawing operators repeated until the stream inflates to `megabytes`."""
    operators = b"BT /F1 12 Tf 72 720 Td (zip bomb text) Tj ET\n"
    return pdf_with_stream(operators * (megabytes * 2**20 // len(operators)))


def pdf_mutants(count: int, seed: int = 17) -> list[bytes]:
    """A valid one-page PDF with one to four random bytes changed, `count` times."""
    base = minimal_pdf(["Opening hours are nine to five.", "Call us any time."], title="Hours")
    rng = random.Random(seed)
    mutants = []
    for _ in range(count):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        mutants.append(bytes(data))
    return mutants


def heading_bomb(spaces: int = 20_000) -> str:
    """A heading line that made the old heading regexes cubic (4,000 spaces: 54 s, holding the GIL)."""
    return "# a" + " " * spaces + "x\n\n## b" + "\t" * spaces + "y #\n\nSome text under a hostile heading.\n"


def random_bytes(size: int, seed: int = 5) -> bytes:
    return random.Random(seed).randbytes(size)


def write_hostile_files(folder: Path) -> tuple[set[str], set[str]]:
    """Every hostile file in `folder`. Returns the names that must be skipped with a reason, and the names
    that must not be listed at all (links leading out of the folder, special files). The mutated PDFs may
    go either way: some still parse."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zip-bomb.pdf").write_bytes(pdf_bomb())
    for number, mutant in enumerate(pdf_mutants(12)):
        (folder / f"mutant-{number:02d}.pdf").write_bytes(mutant)
    (folder / "heading-bomb.md").write_text(heading_bomb())
    (folder / "noise.md").write_bytes(random_bytes(200_000))
    (folder / "nul-bytes.txt").write_bytes(b"looks like text\x00\x00\x00 but is not" * 100)
    # 26 MB of words: over the 25 MB default (once it cost 2 GB and minutes inside the service).
    (folder / "huge.txt").write_bytes(b"lorem ipsum dolor sit amet " * 1_010_000)
    (folder / "passwd.md").symlink_to("/etc/passwd")
    (folder / "environ.txt").symlink_to("/proc/self/environ")
    (folder / "etc").symlink_to("/etc", target_is_directory=True)
    (folder / "loop.md").symlink_to(folder / "loop.md")
    os.mkfifo(folder / "pipe.md")  # opening it would block the ingest forever
    skipped = {"zip-bomb.pdf", "noise.md", "nul-bytes.txt", "huge.txt"}
    unlisted = {"passwd.md", "environ.txt", "loop.md", "pipe.md"}
    return skipped, unlisted
