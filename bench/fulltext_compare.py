"""Compare full-text extractors (trafilatura, readability-lxml) on real article pages: quality and speed.

Corpus: trafilatura's public evaluation set (tests/evaldata.json + tests/eval, tests/cache; Apache-2.0 repo).
Each page lists text segments that belong to the main content ("with") and boilerplate that must not
appear ("without"). An extractor's HTML output is turned into text and the segments are looked up.

    git clone --depth 1 https://github.com/adbar/trafilatura /tmp/trafilatura
    /work/venv/bin/python bench/fulltext_compare.py /tmp/trafilatura/tests [--limit N]

Also runs the chosen production path, aggregator.fulltext.extract_main_content, as its own row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lxml.html

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.fulltext import extract_main_content
from aggregator.text import collapse_whitespace

Extractor = Callable[[bytes, str], "str | None"]


def run_trafilatura(page: bytes, url: str) -> str | None:
    import trafilatura

    return trafilatura.extract(
        page, url=url, output_format="html", include_links=True, include_images=True, include_tables=True
    )


def run_trafilatura_precision(page: bytes, url: str) -> str | None:
    import trafilatura

    return trafilatura.extract(
        page,
        url=url,
        output_format="html",
        include_links=True,
        include_images=True,
        include_tables=True,
        favor_precision=True,
    )


def run_readability(page: bytes, url: str) -> str | None:
    from readability import Document

    return Document(page, url=url).summary(html_partial=True)  # type: ignore[no-any-return]


def run_whole_body(page: bytes, url: str) -> str | None:
    """Baseline: no extraction at all, the whole page text (recall ceiling, precision floor)."""
    return str(lxml.html.tostring(lxml.html.document_fromstring(page), encoding="unicode"))


def html_to_text(html: str) -> str:
    if not html.strip():
        return ""
    root = lxml.html.fromstring(html)
    for bad in root.xpath("//script|//style"):
        bad.drop_tree()
    return collapse_whitespace(root.text_content())


@dataclass
class Score:
    pages: int = 0
    failures: int = 0  # None, empty output or an exception
    with_found: int = 0
    with_total: int = 0
    without_absent: int = 0
    without_total: int = 0
    times_s: list[float] = field(default_factory=list)

    def row(self, name: str) -> str:
        recall = self.with_found / max(self.with_total, 1)
        precision = self.without_absent / max(self.without_total, 1)
        f1 = 2 * recall * precision / max(recall + precision, 1e-9)
        ms = sorted(t * 1000 for t in self.times_s)
        p95 = ms[int(len(ms) * 0.95) - 1] if ms else 0.0
        return (
            f"{name:<22} {self.pages:>5} {self.failures:>5} {recall:>8.3f} {precision:>10.3f} {f1:>6.3f}"
            f" {statistics.mean(ms):>8.1f} {statistics.median(ms):>8.1f} {p95:>8.1f} {sum(ms) / 1000:>8.1f}"
        )


HEADER = (
    f"{'extractor':<22} {'pages':>5} {'fail':>5} {'recall':>8} {'no-boiler':>10} {'f1':>6}"
    f" {'mean ms':>8} {'p50 ms':>8} {'p95 ms':>8} {'total s':>8}"
)


def score_page(extract: Extractor, page: bytes, url: str, case: dict[str, object], score: Score) -> None:
    with_segments = [collapse_whitespace(s) for s in case.get("with", [])]  # type: ignore[attr-defined]
    without_segments = [collapse_whitespace(s) for s in case.get("without", [])]  # type: ignore[attr-defined]
    score.pages += 1
    start = time.perf_counter()
    try:
        html = extract(page, url)
    except Exception:  # noqa: BLE001 (a crash on one page counts as a failure, the bench carries on)
        html = None
    score.times_s.append(time.perf_counter() - start)
    text = html_to_text(html) if html else ""
    if not text:
        score.failures += 1
    score.with_total += len(with_segments)
    score.with_found += sum(s in text for s in with_segments)
    score.without_total += len(without_segments)
    score.without_absent += sum(s not in text for s in without_segments)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tests_dir", type=Path, help="trafilatura's tests/ directory")
    parser.add_argument("--limit", type=int, default=0, help="only the first N pages")
    args = parser.parse_args()
    cases: dict[str, dict[str, object]] = json.loads((args.tests_dir / "evaldata.json").read_text("utf-8"))
    extractors: dict[str, Extractor] = {
        "trafilatura": run_trafilatura,
        "trafilatura precision": run_trafilatura_precision,
        "readability-lxml": run_readability,
        "aggregator (chosen)": extract_main_content,
        "whole page (baseline)": run_whole_body,
    }
    scores = {name: Score() for name in extractors}
    items = list(cases.items())[: args.limit or None]
    warnings.simplefilter("ignore")
    for url, case in items:
        name = str(case["file"])
        path = args.tests_dir / "eval" / name
        if not path.exists():
            path = args.tests_dir / "cache" / name
        page = path.read_bytes()
        for extractor_name, extract in extractors.items():
            score_page(extract, page, url, case, scores[extractor_name])
    print(f"{len(items)} pages from {args.tests_dir}")
    print(HEADER)
    for name, score in scores.items():
        print(score.row(name))


if __name__ == "__main__":
    main()
