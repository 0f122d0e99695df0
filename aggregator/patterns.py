"""Every regular expression a user writes (filter rules, site rules' drop_text) is compiled and searched
here, in bounded time; no I/O, and no knowledge of where a pattern came from.

RE2 (google-re2) runs a pattern in linear time when it can. RE2 refuses back-references and
look-arounds; those patterns run on the `regex` module, which can backtrack for ever, so there:

- each search has a timeout (`Budget.search_s`) and counts as no match when it runs out;
- a pattern's searches together get `Budget.pattern_s` per run, and all fallback searches of a run
  together `Budget.run_s`: past its budget a pattern is disabled for the rest of the run (it
  matches nothing), with one notice saying so (issue 20: 400 items x one look-around rule took 176 s).

Budgets are per process: a run's worker processes each keep their own ledger (they work in
parallel, so the run's wall time spent stays about one budget). A ledger lives for one run: `start_run`
with the run's token (its `now`) begins a new one. Time is read from the ledger's clock, an input.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

# Python's \w \d \s \b are Unicode-aware; RE2's are ASCII-only (\s misses U+3000, \w misses 中).
_SHORTHAND = re.compile(r"(?<!\\)(?:\\\\)*\\[wWdDsSbB]")


@dataclass(frozen=True, slots=True)
class Budget:
    """Seconds the `regex` fallback may spend: per search, per pattern per run, per run."""

    search_s: float = 0.25
    pattern_s: float = 2.0
    run_s: float = 10.0


@dataclass
class Ledger:
    """What one run's fallback searches spent in this process, and what that disabled."""

    budget: Budget = field(default_factory=Budget)
    clock: Callable[[], float] = time.perf_counter
    spent: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    disabled: set[str] = field(default_factory=set)
    notices: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allowance(self, pattern: str) -> float:
        """Seconds the next search of `pattern` may take; 0 when the pattern is disabled."""
        if pattern in self.disabled:
            return 0.0
        left = min(self.budget.search_s, self.budget.pattern_s - self.spent.get(pattern, 0.0),
                   self.budget.run_s - self.total)
        if left > 0:
            return left
        with self._lock:
            if pattern not in self.disabled:
                self.disabled.add(pattern)
                which = ("this run's" if self.total >= self.budget.run_s else "its own")
                self.notices.append(
                    f"pattern {_short(pattern)} {_DISABLED} (it matches nothing): its "
                    f"searches on the `regex` fallback (RE2 cannot run it) used up {which} time budget "
                    f"({self.budget.pattern_s:g} s per pattern, {self.budget.run_s:g} s per run)")
        return 0.0

    def charge(self, pattern: str, seconds: float) -> None:
        with self._lock:
            self.spent[pattern] = self.spent.get(pattern, 0.0) + seconds
            self.total += seconds

    def take_notices(self) -> list[str]:
        with self._lock:
            out, self.notices = self.notices, []
        return out


_current: list[tuple[object, Ledger]] = [(None, Ledger())]


def start_run(token: object, budget: Budget = Budget(), clock: Callable[[], float] = time.perf_counter) -> Ledger:
    """The ledger of the run `token` names (e.g. its `now`): a new one when the token changed."""
    held, ledger = _current[0]
    if held != token or ledger.budget != budget or ledger.clock is not clock:
        ledger = Ledger(budget, clock)
        _current[0] = (token, ledger)
    return ledger


def ledger() -> Ledger:
    """The current run's ledger (work outside any run shares a default one)."""
    return _current[0][1]


def take_notices() -> list[str]:
    """The notices of patterns disabled since the last call, each given once."""
    return ledger().take_notices()


_DISABLED = "disabled for the rest of this run"


def is_pattern_notice(message: str) -> bool:
    """Whether `message` is a Ledger notice (the same text comes from each worker process)."""
    return message.startswith("pattern ") and _DISABLED in message


def _short(pattern: str) -> str:
    return repr(pattern if len(pattern) <= 80 else pattern[:77] + "...")


@dataclass(frozen=True, eq=False)
class SafePattern:
    """A compiled user pattern. `search(text)` is True, False, or False after its time ran out;
    `pattern` and `flags` are as Python's `re` would have them (for analysis such as required texts)."""

    pattern: str
    flags: int
    engine: str  # "re2" or "regex"; "re" for our own patterns (trusted_pattern)
    _search: Callable[[str], bool] = field(repr=False)

    def search(self, text: str) -> bool:
        return self._search(text)


@lru_cache(maxsize=2048)
def compile_pattern(pattern: str, *, ignore_case: bool = False, python_classes: bool = False) -> SafePattern:
    """Compile a user pattern; raises regex.error (naming what is wrong) when no engine accepts it.

    python_classes: keep the meaning Python's `re` gives \\w \\d \\s \\b (Unicode) by leaving
    patterns that use them to `regex`; otherwise RE2's ASCII meaning is accepted.
    """
    import regex  # both engines imported only once a user pattern needs them: most runs have none

    re2 = _re2()
    flags = re.compile(pattern, re.IGNORECASE if ignore_case else 0).flags if _re_accepts(pattern) else 0
    if re2 is not None and not (python_classes and _SHORTHAND.search(pattern)):
        options = re2.Options()
        options.case_sensitive = not ignore_case
        options.log_errors = False  # RE2 otherwise writes rejected patterns to stderr
        try:
            compiled_re2 = re2.compile(pattern, options)
        except re2.error:
            pass  # back-references, look-arounds: RE2 cannot run them, `regex` can (bounded)
        else:
            return SafePattern(pattern, flags, "re2", lambda text: compiled_re2.search(text) is not None)
    compiled = regex.compile(pattern, (regex.IGNORECASE if ignore_case else 0) | regex.VERSION0)

    def search_bounded(text: str) -> bool:
        book = ledger()
        allowed = book.allowance(pattern)
        if allowed <= 0:
            return False
        started = book.clock()
        try:
            # concurrent: the search lets go of the GIL, so a hostile pattern in the run's own process
            # (a few sources are parsed in threads) does not stall its event loop and other threads
            return compiled.search(text, timeout=allowed, concurrent=True) is not None
        except TimeoutError:
            return False
        finally:
            book.charge(pattern, book.clock() - started)

    return SafePattern(pattern, flags, "regex", search_bounded)


@lru_cache(maxsize=256)
def trusted_pattern(pattern: str) -> SafePattern:
    """One of our own patterns (the packaged site rules): stdlib `re`, no budget. Never a user's."""
    compiled = re.compile(pattern)
    return SafePattern(pattern, compiled.flags, "re", lambda text: compiled.search(text) is not None)


def _re2() -> Any:
    try:  # google-re2: linear-time matching; without it every pattern runs on `regex`, bounded
        import re2
    except ImportError:  # pragma: no cover - depends on the installation
        return None
    return re2


def _re_accepts(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True
