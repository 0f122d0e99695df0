"""The test corpus is self-contained: every file has its origin and licence in tests/corpus/MANIFEST.tsv."""

from __future__ import annotations

import csv
import hashlib
import runpy

from conftest import CORPUS, ROOT

MANIFEST = CORPUS / "MANIFEST.tsv"
SCRIPT = runpy.run_path(str(ROOT / "scripts" / "corpus_manifest.py"))


def _rows() -> dict[str, dict[str, str]]:
    with open(MANIFEST, encoding="utf-8", newline="") as handle:
        return {row["file"]: row for row in csv.DictReader(handle, delimiter="\t")}


def test_every_corpus_file_has_an_origin_and_a_licence() -> None:
    rows = _rows()
    files = set(SCRIPT["corpus_files"]())
    assert files == set(rows), "run python scripts/corpus_manifest.py"
    assert len(files) > 200
    assert all(row["origin"].strip() and row["licence"].strip() for row in rows.values())


def test_manifest_is_what_the_script_writes() -> None:
    assert MANIFEST.read_text(encoding="utf-8") == SCRIPT["manifest_text"](), "run python scripts/corpus_manifest.py"


def test_corpus_holds_no_exact_repeats() -> None:
    digests: dict[str, str] = {}
    for relative in SCRIPT["corpus_files"]():
        digest = hashlib.sha256((CORPUS / relative).read_bytes()).hexdigest()
        assert digest not in digests, f"{relative} repeats {digests[digest]}"
        digests[digest] = relative
