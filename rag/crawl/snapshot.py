"""The site snapshot: a folder with one file per crawled page and `pages.json`, which says what each is.

    <folder>/pages.json        {url: {"file", "title", "etag", "last_modified", "sha256", "fetched_at",
                                      "source", "links"}}
    <folder>/<sha1 of url>.md  the page's main content as Markdown
    <folder>/<sha1 of url>.pdf a PDF, as fetched
    <folder>/crawl.json        {"finished_at", "complete", "pages"} of the last crawl

Nothing is ever half-written: each file is written under a temporary name and renamed into place, and
`pages.json` is replaced in one step at the end of a crawl, after the files it names exist; files it no
longer names are deleted only after that. A page changed by a crawl that then dies is rewritten in place
before `pages.json` knows: a reader that must match the two compares the file's sha256 with the record's."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from rag.settings import RagSettings

log = structlog.get_logger(__name__)

PAGES_FILE = "pages.json"
CRAWL_FILE = "crawl.json"  # when the last crawl ended: replicas sharing the folder read it before crawling
_LOCK_FILE = ".crawl.lock"
_PAGE_SUFFIXES = (".md", ".pdf")
_TEMP_SUFFIX = ".tmp"


class SnapshotInUse(Exception):
    """Another crawl is writing the same snapshot folder."""


def site_snapshot_dir(settings: RagSettings) -> Path:
    """Where the website's pages are kept: SITE_DIR, by default beside the store in `CHROMA_PATH/site`."""
    return settings.site_dir or settings.chroma_path / "site"


def page_file_name(url: str, suffix: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest() + suffix


@dataclass(frozen=True, slots=True)
class PageRecord:
    file: str
    title: str
    sha256: str  # of the saved file
    fetched_at: str  # when the saved content was fetched (ISO 8601, UTC); a 304 leaves it as it was
    etag: str | None = None
    last_modified: str | None = None
    source: str = ""  # the address the content came from (after redirects): the validators are its
    links: tuple[str, ...] = field(default=())  # where it links, so a re-crawl answered 304 can go on

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "title": self.title,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "sha256": self.sha256,
            "fetched_at": self.fetched_at,
            "source": self.source,
            "links": list(self.links),
        }

    @classmethod
    def from_json(cls, data: Any) -> PageRecord | None:
        """A record read back, or None when it is not one (a hand-edited or foreign file)."""
        if not isinstance(data, dict):
            return None
        texts = ("file", "title", "sha256", "fetched_at")
        optional = ("etag", "last_modified")
        if not all(isinstance(data.get(key), str) for key in texts):
            return None
        if not all(data.get(key) is None or isinstance(data.get(key), str) for key in optional):
            return None
        links = data.get("links", [])
        file = data["file"]
        # The name is joined to the folder: it must stay inside it.
        if not isinstance(links, list) or Path(file).name != file or not file.endswith(_PAGE_SUFFIXES):
            return None
        return cls(
            file=file,
            title=data["title"],
            sha256=data["sha256"],
            fetched_at=data["fetched_at"],
            etag=data.get("etag"),
            last_modified=data.get("last_modified"),
            source=data["source"] if isinstance(data.get("source"), str) else "",
            links=tuple(link for link in links if isinstance(link, str)),
        )


class Snapshot:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder for one crawl; SnapshotInUse if another process (or crawl) holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / _LOCK_FILE).open("a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SnapshotInUse(f"another crawl is writing {self.folder}") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self) -> dict[str, PageRecord]:
        """The records of the last crawl; none when there was none, or the file cannot be read."""
        path = self.folder / PAGES_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("crawl_snapshot_unreadable", path=str(path), error=str(exc))
            return {}
        if not isinstance(data, dict):
            log.warning("crawl_snapshot_unreadable", path=str(path), error="not a JSON object")
            return {}
        records = {}
        for url, value in data.items():
            record = PageRecord.from_json(value)
            if record is not None and (self.folder / record.file).is_file():
                records[url] = record
        return records

    def last_crawl(self) -> float | None:
        """When the last crawl of this folder ended (seconds since the epoch); None: never, or unreadable."""
        try:
            data = json.loads((self.folder / CRAWL_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("crawl_record_unreadable", path=str(self.folder / CRAWL_FILE), error=str(exc))
            return None
        finished = data.get("finished_at") if isinstance(data, dict) else None
        return float(finished) if isinstance(finished, int | float) else None

    def note_crawl(self, finished_at: float, complete: bool, pages: int) -> None:
        """Record that a crawl ended (complete or not), for whoever decides when the next one is due."""
        record = {"finished_at": finished_at, "complete": complete, "pages": pages}
        self._write_atomically(self.folder / CRAWL_FILE, json.dumps(record).encode())

    def write_page(self, url: str, suffix: str, content: bytes) -> str:
        """Save one page's content under its file name, whole or not at all; return the name."""
        name = page_file_name(url, suffix)
        self._write_atomically(self.folder / name, content)
        return name

    def commit(self, records: dict[str, PageRecord]) -> bool:
        """Make `records` the snapshot: replace pages.json (only if it changed) and delete the page files
        it no longer names. True when pages.json was rewritten."""
        text = json.dumps({url: records[url].to_json() for url in sorted(records)}, indent=1) + "\n"
        path = self.folder / PAGES_FILE
        try:
            unchanged = path.read_text(encoding="utf-8") == text
        except (OSError, UnicodeDecodeError):
            unchanged = False
        if not unchanged:
            self._write_atomically(path, text.encode())
        keep = {record.file for record in records.values()}
        for entry in self.folder.iterdir():
            stale_page = entry.name.endswith(_PAGE_SUFFIXES) and entry.name not in keep
            if (stale_page or entry.name.endswith(_TEMP_SUFFIX)) and entry.is_file():
                entry.unlink(missing_ok=True)
        return not unchanged

    def _write_atomically(self, path: Path, content: bytes) -> None:
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{_TEMP_SUFFIX}")
        try:
            with temp.open("wb") as handle:
                handle.write(content)
                handle.flush()
                # Without it a power cut can leave the renamed file empty on some file systems.
                os.fsync(handle.fileno())
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
