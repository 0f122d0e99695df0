"""Run `aggregator run` over every document of the test corpus (tests/corpus) served on loopback, then check the output.

    python scripts/corpus_check.py [--corpus tests/corpus] [--validator PATH/TO/feedvalidator/src]

One source per document, spread over several categories, max_entries: 0. Reports: sources ok and
failed, items published vs items parsed, whether a second run rewrote anything, and, when the W3C
feed validator's source is given (https://github.com/w3c/feedvalidator; needs lxml, html5lib and
rdflib), its errors and warnings per kind over every output file. A tool for people, not a test.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CATEGORIES = ("news", "blogs", "podcasts", "zh", "misc", "dev")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def serve(folder: Path) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def documents(corpus: Path) -> list[Path]:
    found = [p for p in sorted(corpus.rglob("*")) if p.is_file() and p.suffix in (".xml", ".rss", ".atom", ".json",
                                                                                  ".rdf")]
    return [p for p in found if "hostile" not in p.parts and p.name != "manifest.json"]


def write_config(work: Path, corpus: Path, server: ThreadingHTTPServer, docs: list[Path]) -> Path:
    port = server.server_address[1]
    lines = ["output:", f"  dir: {work / 'out'}", "  base_url: https://news.example.org/feeds/", "  max_entries: 0",
             "  formats: [atom, rss, json]", f"state: {work / 'state.db'}",
             "fetch: {concurrency: 16, per_host: 16}", "categories:"]
    lines += [f"  {slug}: {{title: {slug.title()}}}" for slug in CATEGORIES]
    lines.append("sources:")
    for i, doc in enumerate(docs):
        url = f"http://127.0.0.1:{port}/{doc.relative_to(corpus).as_posix()}"
        lines.append(f"  - {{url: '{url}', category: {CATEGORIES[i % len(CATEGORIES)]}}}")
    path = work / "feeds.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_aggregator(config: Path, *extra: str) -> str:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "aggregator.cli", "run", "--config", str(config), "--no-progress",
                             *extra], capture_output=True, text=True, check=False)
    print(f"  aggregator run {' '.join(extra)}: exit {result.returncode} in {time.monotonic() - started:.1f} s")
    return result.stdout + result.stderr


def validate(validator_src: Path, files: list[Path]) -> None:
    sys.path.insert(0, str(validator_src))
    import feedvalidator  # type: ignore[import-not-found]
    from feedvalidator import compatibility  # type: ignore[import-not-found]
    from feedvalidator.logging import Error, Warning  # type: ignore[import-not-found]  # noqa: A004

    kinds: collections.Counter[tuple[str, str]] = collections.Counter()
    for path in files:
        events = feedvalidator.validateString(path.read_bytes(), firstOccurrenceOnly=1,
                                              base="https://news.example.org/feeds/" + path.name)["loggedEvents"]
        for event in compatibility.AA(events):
            level = "error" if isinstance(event, Error) else "warning" if isinstance(event, Warning) else "info"
            kinds[(level, type(event).__name__)] += 1
            if level == "error":
                print(f"  ERROR {path.name}: {type(event).__name__} {event.params}")
    print(f"  W3C validator over {len(files)} files: "
          f"{sum(v for (lvl, _k), v in kinds.items() if lvl == 'error')} errors")
    for (level, kind), count in sorted(kinds.items()):
        print(f"    {level:7} {kind}: {count} files")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "corpus")
    parser.add_argument("--validator", type=Path, help="feedvalidator/src folder")
    parser.add_argument("--work", type=Path, help="keep config, state and output in this folder")
    args = parser.parse_args()
    docs = documents(args.corpus)
    server = serve(args.corpus)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        config = write_config(work, args.corpus, server, docs)
        print(f"{len(docs)} documents from {args.corpus}")
        output = run_aggregator(config)
        print("\n".join("  " + line for line in output.splitlines() if not line.startswith(("  failed", "20"))
                        and ("sources:" in line or "articles:" in line or "feeds:" in line)))
        for line in output.splitlines():
            if "failed:" in line:
                print("  " + line.strip())
        out = work / "out"
        before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
        run_aggregator(config, "--force")
        after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
        changed = [name for name in after if before.get(name) != after[name]]
        print(f"  second run (--force): {len(changed)} files rewritten {changed[:5]}")
        if args.validator:
            validate(args.validator, sorted(p for p in out.iterdir() if p.suffix in (".atom", ".rss")))
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
