"""HTML (visible text only) and PDF (text layer) knowledge files, end to end into retrieval."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.chunking import chunk_document
from rag.embedder import Embedder, resolve_model_path
from rag.ingestion import ensure_ingested
from rag.loading import load, scan
from rag.retriever import Retriever
from rag.store import KnowledgeStore
from rag.tokens import tokens_for
from tests.conftest import rag_settings

PAGE = """<!doctype html>
<html><head><title>Opening Hours</title><style>.x { color: red }</style>
<script>var secret = "do not index me";</script></head>
<body>
<nav hidden>Home | About</nav>
<h1>Opening Hours</h1>
<p>Our showroom is open <b>Tuesday to Saturday</b>, 10:00&ndash;16:00.</p>
<div style="display: none">Internal note: staff rota</div>
<h2>Holidays</h2>
<ul><li>Closed on 25 December</li><li>Closed on 1 January</li></ul>
<span aria-hidden="true">icon</span>
</body></html>"""


def minimal_pdf(lines: list[str], title: str | None = None) -> bytes:
    """A real one-page PDF with a text layer (Helvetica), built object by object with a correct xref."""
    content = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
    info = f"<< /Title ({title}) >>" if title else "<< >>"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        info,
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    out += trailer.encode()
    return out


def test_html_keeps_visible_text_and_its_sections(tmp_path: Path) -> None:
    (tmp_path / "hours.html").write_text(PAGE)
    document = load(scan(tmp_path)[0])

    assert document.title == "Opening Hours"
    assert "Tuesday to Saturday, 10:00\u201316:00." in document.text  # the entity, decoded
    for invisible in ("do not index me", "color: red", "Home | About", "staff rota", "icon"):
        assert invisible not in document.text
    chunks = chunk_document(
        document, size=200, overlap=30, tokens=tokens_for(resolve_model_path("all-MiniLM-L6-v2"))
    )
    assert [c.heading_path for c in chunks] == ["", "Holidays"]
    assert "- Closed on 25 December" in chunks[1].text


def test_pdf_text_layer_and_title(tmp_path: Path) -> None:
    (tmp_path / "returns-policy.pdf").write_bytes(
        minimal_pdf(["Returns are accepted within 30 days.", "Bring your receipt."], title="Returns Policy")
    )
    (tmp_path / "untitled-guide.pdf").write_bytes(minimal_pdf(["Assembly takes about an hour."]))
    documents = {d.source: d for d in (load(f) for f in scan(tmp_path))}

    assert documents["returns-policy.pdf"].title == "Returns Policy"
    assert "Returns are accepted within 30 days." in documents["returns-policy.pdf"].text
    assert documents["untitled-guide.pdf"].title == "Untitled Guide"


def test_unreadable_files_are_skipped_and_the_rest_is_served(
    tmp_path: Path, embedder: Embedder, capfd: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "hours.html").write_text(PAGE)
    (folder / "returns.pdf").write_bytes(minimal_pdf(["Returns are accepted within 30 days of purchase."]))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (folder / "scan.pdf").write_bytes(minimal_pdf([]))  # a page with no text layer
    settings = rag_settings(knowledge_dir=folder, chroma_path=tmp_path / "db")
    store = KnowledgeStore.persistent(settings.chroma_path, settings.collection_prefix)

    report = ensure_ingested(store, embedder, settings)

    assert report.status == "rebuilt" and report.files == 4
    assert report.skipped == ["broken.pdf", "scan.pdf"]
    build = store.active_build
    assert build is not None and "text layer" in build.manifest.files["scan.pdf"].skipped
    skipped = [line for line in capfd.readouterr().err.splitlines() if "knowledge_file_skipped" in line]
    assert len(skipped) == 2
    assert any("broken.pdf" in m for m in skipped) and any("text layer" in m for m in skipped)
    retriever = Retriever(store, embedder, 2, mode="hybrid", lexical_dir=tmp_path / "db" / "lexical")
    assert retriever.retrieve("Can I return something I bought?")[0].source == "returns.pdf"
    assert retriever.retrieve("When is the showroom open?")[0].source == "hours.html"
