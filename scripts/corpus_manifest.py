"""Write tests/corpus/MANIFEST.tsv: one row per corpus file with its origin and licence.

The corpus is copied byte for byte from the team's shared corpus; each part keeps its own detailed
manifest (feeds/MANIFEST.tsv, rsshub/MANIFEST.tsv, hostile/xml/manifest.json, the origin field of each
line of hostile/xss/vectors.jsonl). This script folds them into one table, so every file has a row:

    python scripts/corpus_manifest.py            # rewrites tests/corpus/MANIFEST.tsv
    python scripts/corpus_manifest.py --check    # exit 1 if the table is out of date

tests/test_corpus_manifest.py runs the check, so a file added without a row fails the suite.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import Counter
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus"
OURS = ("aggregator project (made for these tests)", "MIT (this repository)")
RSSHUB_ORIGIN = "Rock-Candy-Tea/RSSHUB-PAGE (RSSHub output republished as Hexo posts)"
RSSHUB_LICENCE = "NOASSERTION (no licence file; the text belongs to the publishers named in rsshub/MANIFEST.tsv)"
HEADER = ("file", "origin", "licence")


def _feed_rows() -> dict[str, tuple[str, str]]:
    with open(CORPUS / "feeds" / "MANIFEST.tsv", encoding="utf-8", newline="") as handle:
        return {
            f"feeds/{row['file']}": (f"{row['origin_repo']}:{row['origin_path']}@{row['commit']}", row["license"])
            for row in csv.DictReader(handle, delimiter="\t")
        }


def _xss_origin() -> str:
    lines = (CORPUS / "hostile" / "xss" / "vectors.jsonl").read_text(encoding="utf-8").split("\n")
    repos = Counter(json.loads(line)["origin"].split(":", 1)[0] for line in lines if line.strip())
    listed = ", ".join(f"{repo} ({count})" for repo, count in repos.most_common())
    return f"public sanitizer test suites, each line names its own: {listed}"


def origin_of(relative: str, feeds: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """(origin, licence) of one corpus file, by the part of the corpus it lives in."""
    if relative in feeds:
        return feeds[relative]
    if relative.startswith(("rsshub/", "seed/")) and relative.endswith((".xml", ".md")) and "README" not in relative \
            and "MANIFEST" not in relative:
        return RSSHUB_ORIGIN, RSSHUB_LICENCE
    if relative == "hostile/xss/vectors.jsonl":
        return _xss_origin(), "each vector under its origin repository's licence (quoted as test data)"
    return OURS


def corpus_files() -> list[str]:
    """Every file of the corpus (relative, sorted), bytecode caches and the table itself aside."""
    return sorted(
        relative for p in CORPUS.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
        and (relative := p.relative_to(CORPUS).as_posix()) != "MANIFEST.tsv"
    )


def manifest_text() -> str:
    feeds = _feed_rows()
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(HEADER)
    for relative in corpus_files():
        writer.writerow((relative, *origin_of(relative, feeds)))
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if MANIFEST.tsv is out of date")
    args = parser.parse_args()
    target = CORPUS / "MANIFEST.tsv"
    text = manifest_text()
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target}: out of date; run python scripts/corpus_manifest.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
