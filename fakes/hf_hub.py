"""A fake Hugging Face Hub on 127.0.0.1 that the real `huggingface_hub` client downloads from.

The part of the Hub protocol that `snapshot_download` and `HfApi.model_info` use:

- `GET /api/models/{repo}[/revision/{rev}]`: `id`, commit `sha`, `siblings`; with `blobs=True` each sibling
  also has `size`, `blobId` and, for LFS files, `lfs: {sha256, size, pointerSize}`.
- `GET /api/models/{repo}/tree/{rev}`: the file list; LFS files carry `lfs: {oid, size, pointerSize}`.
- `HEAD|GET /{repo}/resolve/{rev}/{filename}`: the file, with `X-Repo-Commit`, `ETag` (git blob id) and,
  for LFS files, `X-Linked-Etag` (sha256) and `X-Linked-Size`.
- `GET /api/agent-harnesses`: an empty registry (the client fetches it once, best effort).

Unknown repos, revisions and files answer 404 with the Hub's `X-Error-Code` (`RepoNotFound`,
`RevisionNotFound`, `EntryNotFound`). Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from fakes.thread_server import ThreadServer

LFS_SUFFIXES = (".safetensors", ".bin", ".model")
_API = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+)|/tree/([^/]+))?$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    sha: str
    # What the hub serves instead of the real bytes of a file; the metadata still describes the real ones.
    served: dict[str, bytes] = field(default_factory=dict)

    def corrupt(self, name: str) -> None:
        """Serve `name` with its last byte flipped: same size, wrong sha256, header still readable."""
        data = self.files[name]
        self.served[name] = data[:-1] + bytes([data[-1] ^ 0xFF])

    def is_lfs(self, name: str) -> bool:
        return name.endswith(LFS_SUFFIXES)

    def entry(self, name: str) -> dict[str, Any]:
        data = self.files[name]
        info: dict[str, Any] = {"size": len(data), "oid": git_blob_id(data)}
        if self.is_lfs(name):
            info["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return info


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the hub first"
        return self._server.url

    def add_repo(self, repo_id: str, folder: Path) -> FakeRepo:
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        files[".gitattributes"] = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
        files["README.md"] = f"# {repo_id}\n".encode()
        sha = hashlib.sha1(repo_id.encode() + b"".join(files.values())).hexdigest()
        repo = FakeRepo(files=files, sha=sha)
        self.repos[repo_id] = repo
        return repo

    def downloads_of(self, repo_id: str, filename: str) -> list[Request]:
        """The GETs of a file's bytes, at any revision."""
        return [
            r
            for r in self.requests
            if r.method == "GET" and (m := _RESOLVE.match(r.path)) and m[1] == repo_id and m[3] == filename
        ]

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                hub._handle(self, body=True)

            def do_HEAD(self) -> None:
                hub._handle(self, body=False)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadServer(Handler).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    # -- protocol ----------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        parts = urlsplit(handler.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        with self._lock:
            self.requests.append(Request(handler.command, path, query))
        if path == "/api/agent-harnesses":
            self._json(handler, {"standardEnvVars": [], "harnesses": {}}, body=body)
            return
        if api := _API.match(path):
            repo_id, revision, tree = api.groups()
            repo = self._repo(handler, repo_id, revision or tree or "main")
            if repo is None:
                return
            if tree is not None:
                listing = [{"type": "file", "path": name, **repo.entry(name)} for name in repo.files]
                self._json(handler, listing, body=body)
            else:
                self._json(handler, self._info(repo_id, repo, blobs="blobs" in query), body=body)
            return
        if resolve := _RESOLVE.match(path):
            repo_id, revision, filename = resolve.groups()
            repo = self._repo(handler, repo_id, revision)
            if repo is None:
                return
            if filename not in repo.files:
                self._error(handler, 404, "EntryNotFound", f"{filename} does not exist", commit=repo.sha)
                return
            self._file(handler, repo, filename, body=body)
            return
        self._error(handler, 404, None, "no such endpoint")

    def _repo(self, handler: BaseHTTPRequestHandler, repo_id: str, revision: str) -> FakeRepo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(handler, 404, "RepoNotFound", "Repository not found")
            return None
        if revision not in ("main", repo.sha):
            self._error(handler, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return repo

    @staticmethod
    def _info(repo_id: str, repo: FakeRepo, *, blobs: bool) -> dict[str, Any]:
        siblings: list[dict[str, Any]] = []
        for name in repo.files:
            sibling: dict[str, Any] = {"rfilename": name}
            if blobs:
                entry = repo.entry(name)
                sibling |= {"size": entry["size"], "blobId": entry["oid"]}
                if "lfs" in entry:
                    lfs = entry["lfs"]
                    sibling["lfs"] = {
                        "sha256": lfs["oid"],
                        "size": lfs["size"],
                        "pointerSize": lfs["pointerSize"],
                    }
            siblings.append(sibling)
        return {"id": repo_id, "modelId": repo_id, "sha": repo.sha, "private": False, "siblings": siblings}

    @staticmethod
    def _file(handler: BaseHTTPRequestHandler, repo: FakeRepo, filename: str, *, body: bool) -> None:
        data = repo.served.get(filename, repo.files[filename])
        entry = repo.entry(filename)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("X-Repo-Commit", repo.sha)
        handler.send_header("ETag", f'"{entry["oid"]}"')
        if "lfs" in entry:
            handler.send_header("X-Linked-Etag", f'"{entry["lfs"]["oid"]}"')
            handler.send_header("X-Linked-Size", str(entry["lfs"]["size"]))
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    @staticmethod
    def _json(handler: BaseHTTPRequestHandler, payload: Any, *, body: bool) -> None:
        raw = json.dumps(payload).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        if body:
            handler.wfile.write(raw)

    @staticmethod
    def _error(
        handler: BaseHTTPRequestHandler,
        status: int,
        code: str | None,
        message: str,
        commit: str | None = None,
    ) -> None:
        raw = json.dumps({"error": message}).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.send_header("X-Error-Message", message)
        if code is not None:
            handler.send_header("X-Error-Code", code)
        if commit is not None:
            handler.send_header("X-Repo-Commit", commit)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(raw)
