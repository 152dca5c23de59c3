"""Answer extraction and math-verify grading with hard wall-clock timeouts.

Protocol (../shared/spec/evaluation.md, "Grading"): take the content of the last balanced
``\\boxed{...}`` of a completion and compare it with the gold answer using math-verify, gold
first: ``verify(parse(gold), parse(pred))``. Anything that times out or raises is incorrect.

Two layers of protection keep a pathological answer (``\\boxed{9^{9^{9^{9^9}}}}``, a 200 KB box,
thousands of unbalanced braces) from stalling an evaluation:

1. In-process: one ``SIGALRM`` interval timer covers the whole parse + parse + verify of an item
   (math-verify's own per-call timers are switched off so they cannot cancel ours). Signals only
   work in the main thread, so :func:`grade` called from another thread delegates to a one-worker
   :class:`GraderPool`.
2. :func:`grade_many` / :class:`GraderPool`: a pool of worker *processes*, one item in flight per
   worker, each with a wall-clock deadline. A worker that overruns its deadline (e.g. stuck in C
   code that never returns to the interpreter) or dies is killed and replaced; its item is False
   and the batch goes on.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from multiprocessing.connection import wait as _wait_connections
from typing import Iterable, Sequence

# math-verify logs every timeout / parse failure at ERROR level and warns once when its own timers
# are disabled (we disable them on purpose, see `_timer`). Those messages are expected here.
logging.getLogger("math_verify").setLevel(logging.CRITICAL)

__all__ = [
    "extract_boxed",
    "grade",
    "grade_answer",
    "answers_equivalent",
    "grade_many",
    "GraderPool",
    "MAX_ANSWER_CHARS",
]

#: Extracted answers longer than this are graded False without parsing (real answers in MATH-500,
#: AIME, AMC, Minerva and OlympiadBench are all under 300 characters).
MAX_ANSWER_CHARS = 1000

_BOX_COMMANDS = ("\\boxed", "\\fbox")


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------
def _match_braces(text: str) -> dict[int, int]:
    """Map the index of every balanced ``{`` to the index of its ``}`` in one O(len) pass.

    Escaped braces (``\\{``, ``\\}``) are literal characters and are skipped; ``\\\\`` (a LaTeX
    line break) is skipped as a unit so that ``\\\\{`` still opens a group.
    """
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "{}\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def _boxes(text: str) -> list[tuple[int, int, int]]:
    """All balanced boxes as ``(start, content_start, content_end)`` (content is text[cs:ce])."""
    pairs = _match_braces(text)
    found = []
    for cmd in _BOX_COMMANDS:
        start = text.find(cmd)
        while start != -1:
            j = start + len(cmd)
            while j < len(text) and text[j] in " \t\n":
                j += 1
            # `\boxed` must be followed by `{` (not e.g. `\boxedfoo`) and the brace must close.
            if j < len(text) and text[j] == "{" and j in pairs:
                found.append((start, j + 1, pairs[j]))
            start = text.find(cmd, start + 1)
    return found


def extract_boxed(text: str | None) -> str | None:
    """Content of the last balanced ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``.

    "Last" is the box that closes last, i.e. the outermost of nested boxes; if that content is
    itself exactly one box (``\\boxed{\\boxed{5}}``), it is unwrapped. Unbalanced boxes are
    ignored. Returns the stripped content (possibly ``""`` for ``\\boxed{}``), or None when there
    is no balanced box. Runs in O(len(text)).
    """
    if not text:
        return None
    boxes = _boxes(text)
    if not boxes:
        return None
    _, cs, ce = max(boxes, key=lambda b: (b[2], -b[0]))
    content = text[cs:ce].strip()
    while True:
        inner = _boxes(content)
        outer = [b for b in inner if b[0] == 0 and b[2] == len(content) - 1]
        if not outer:
            return content
        content = content[outer[0][1] : outer[0][2]].strip()


# --------------------------------------------------------------------------------------------
# In-process grading with one wall-clock timer
# --------------------------------------------------------------------------------------------
class _Deadline(BaseException):
    """Raised by the SIGALRM handler. A BaseException so math-verify's `except Exception` blocks
    cannot swallow it and carry on parsing after the budget is spent."""


def _on_alarm(signum, frame):  # pragma: no cover - exercised through timeouts
    raise _Deadline()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _run_with_timer(fn, timeout_s: float):
    """Run ``fn()`` under a SIGALRM interval timer of ``timeout_s`` seconds (main thread only).

    Returns ``fn()``'s value, or False if the timer fired or ``fn`` raised.
    """
    old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(timeout_s, 1e-3))
    try:
        return fn()
    except _Deadline:
        return False
    except Exception:  # noqa: BLE001 - any grading error means "incorrect", never a crash
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)


def _verify_answers(gold: str, pred: str) -> bool:
    """math-verify on two extracted answers, gold first; no timers of its own (see module doc)."""
    from math_verify import parse, verify

    gold_parsed = parse("\\boxed{" + gold + "}", parsing_timeout=None)
    pred_parsed = parse("\\boxed{" + pred + "}", parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _clean(answer: str | None) -> str | None:
    if answer is None:
        return None
    answer = answer.strip().strip("$").strip()
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        return None
    return answer


def _equivalent_inline(a: str | None, b: str | None, timeout_s: float) -> bool:
    a, b = _clean(a), _clean(b)
    if a is None or b is None:
        return False
    if a == b:
        return True
    return bool(_run_with_timer(lambda: _verify_answers(a, b), timeout_s))


def answers_equivalent(a: str | None, b: str | None, timeout_s: float = 5.0) -> bool:
    """True iff math-verify judges the two *extracted* answers equal (``a`` plays the gold role).

    Empty/None answers are never equivalent. Identical strings short-circuit to True. Times out
    (False) after ``timeout_s`` seconds of wall-clock time. Used by maj@k and EMPO clustering.
    """
    if _in_main_thread():
        return _equivalent_inline(a, b, timeout_s)
    return GraderPool.run_one(("answers", a, b), timeout_s)


def grade_answer(pred: str | None, gold: str, timeout_s: float = 5.0) -> bool:
    """Grade an already extracted answer against the gold answer (gold first in math-verify)."""
    return answers_equivalent(gold, pred, timeout_s)


def _grade_inline(completion: str, gold: str, timeout_s: float) -> bool:
    return _equivalent_inline(gold, extract_boxed(completion), timeout_s)


def grade(completion: str, gold: str, timeout_s: float = 5.0) -> bool:
    """Is ``completion`` correct? Extract the last ``\\boxed{}`` and math-verify it against ``gold``.

    Returns False (never raises, never hangs longer than ~``timeout_s``) for missing boxes,
    unparsable answers, timeouts and errors.
    """
    if _in_main_thread():
        return _grade_inline(completion, gold, timeout_s)
    return GraderPool.run_one(("completion", completion, gold), timeout_s)


# --------------------------------------------------------------------------------------------
# Process pool with per-item wall-clock deadlines
# --------------------------------------------------------------------------------------------
def _worker_main(conn, timeout_s: float, memory_limit_mb: int | None) -> None:
    """Worker loop: receive ``(idx, kind, x, y)``, answer ``(idx, bool)``; ``None`` stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills us
    if memory_limit_mb:
        try:
            import resource

            limit = int(memory_limit_mb) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError, ImportError):
            pass
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        idx, kind, x, y = msg
        try:
            if kind == "completion":
                ok = _grade_inline(x, y, timeout_s)
            else:
                ok = _equivalent_inline(x, y, timeout_s)
        except BaseException:  # noqa: BLE001 - MemoryError, _Deadline races: all incorrect
            ok = False
        try:
            conn.send((idx, bool(ok)))
        except (BrokenPipeError, OSError):
            return


def _default_start_method() -> str:
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


class _Worker:
    def __init__(self, ctx, timeout_s: float, memory_limit_mb: int | None):
        parent, child = ctx.Pipe(duplex=True)
        self.conn = parent
        self.proc = ctx.Process(
            target=_worker_main, args=(child, timeout_s, memory_limit_mb), daemon=True
        )
        self.proc.start()
        child.close()
        self.item: int | None = None
        self.deadline = math.inf
        self.answered = 0  # items this worker has answered (0 => it may be failing at start-up)

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(timeout=5)
        except Exception:  # noqa: BLE001
            pass
        self.conn.close()


class GraderPool:
    """A reusable pool of grading processes with a wall-clock deadline per item.

    Each worker grades one item at a time in its own main thread (so the in-process SIGALRM timer
    works). The parent additionally kills any worker that has not answered ``timeout_s + grace_s``
    seconds after it was handed an item (or that died), marks that item False and starts a
    replacement, so a batch always finishes.

    Use as a context manager or call :meth:`close`. ``stats`` counts ``timeouts`` (killed for
    overrunning) and ``crashes`` (died) over the pool's lifetime.
    """

    _lock = threading.Lock()

    def __init__(
        self,
        workers: int | None = None,
        timeout_s: float = 5.0,
        grace_s: float = 1.0,
        start_method: str | None = None,
        memory_limit_mb: int | None = 4096,
    ):
        if workers is None:
            workers = os.cpu_count() or 1
        if workers < 1:
            raise ValueError(f"GraderPool: workers must be >= 1, got {workers}")
        if timeout_s <= 0:
            raise ValueError(f"GraderPool: timeout_s must be > 0, got {timeout_s}")
        self.workers = int(workers)
        self.timeout_s = float(timeout_s)
        self.grace_s = float(grace_s)
        self.memory_limit_mb = memory_limit_mb
        method = start_method or _default_start_method()
        self._ctx = mp.get_context(method)
        if method == "forkserver":
            # Workers fork from a server that already imported math-verify/sympy: cheap respawns.
            self._ctx.set_forkserver_preload(["benchmarks.math.grading", "math_verify"])
        self._pool: list[_Worker] = []
        self.stats = {"timeouts": 0, "crashes": 0, "items": 0}
        self._startup_failures = 0  # consecutive workers that died before answering anything

    # -- lifecycle ----------------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self.timeout_s, self.memory_limit_mb)

    def _ensure_workers(self, n: int) -> None:
        while len(self._pool) < n:
            self._pool.append(self._spawn())

    def close(self) -> None:
        for w in self._pool:
            try:
                w.conn.send(None)
            except Exception:  # noqa: BLE001
                pass
        for w in self._pool:
            w.proc.join(timeout=1)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=5)
            w.conn.close()
        self._pool = []

    def __enter__(self) -> "GraderPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # -- work ---------------------------------------------------------------------------------
    def _replace(self, i: int, results: list[bool], reason: str) -> None:
        w = self._pool[i]
        if w.item is not None:
            results[w.item] = False
        self.stats[reason] += 1
        w.kill()
        if reason == "crashes" and w.answered == 0:
            self._startup_failures += 1
            if self._startup_failures >= 3:
                raise RuntimeError(
                    "GraderPool: grading workers keep dying before grading anything "
                    f"(start method {self._ctx.get_start_method()!r}). If grade_many is called "
                    "from a script, protect the script's top level with "
                    "`if __name__ == '__main__':` (the workers re-import the main module)."
                )
        self._pool[i] = self._spawn()

    def _run(self, tasks: Sequence[tuple[str, object, object]], progress=None) -> list[bool]:
        results: list[bool] = [False] * len(tasks)
        if not tasks:
            return results
        self._ensure_workers(min(self.workers, len(tasks)))
        todo = deque(range(len(tasks)))
        done = 0
        budget = self.timeout_s + self.grace_s
        while done < len(tasks):
            # Hand an item to every idle worker.
            for w in self._pool:
                if w.item is None and todo:
                    idx = todo.popleft()
                    kind, x, y = tasks[idx]
                    try:
                        w.conn.send((idx, kind, x, y))
                    except (BrokenPipeError, OSError):
                        todo.appendleft(idx)
                        w.deadline = -math.inf  # replaced below as crashed
                        w.item = None
                        continue
                    w.item = idx
                    w.deadline = time.monotonic() + budget
            busy = [w for w in self._pool if w.item is not None]
            now = time.monotonic()
            wait_s = max(0.0, min((w.deadline for w in busy), default=now) - now)
            ready = _wait_connections([w.conn for w in busy], timeout=wait_s) if busy else []
            ready_ids = {id(c) for c in ready}
            for i, w in enumerate(list(self._pool)):
                if w.deadline == -math.inf:
                    self._replace(i, results, "crashes")
                    continue
                if w.item is None:
                    continue
                if id(w.conn) in ready_ids:
                    try:
                        idx, ok = w.conn.recv()
                    except (EOFError, OSError):
                        done += 1
                        if progress is not None:
                            progress.update(1)
                        self._replace(i, results, "crashes")
                        continue
                    results[idx] = ok
                    w.item, w.deadline = None, math.inf
                    w.answered += 1
                    self._startup_failures = 0
                    done += 1
                    if progress is not None:
                        progress.update(1)
                elif time.monotonic() >= w.deadline:
                    done += 1
                    if progress is not None:
                        progress.update(1)
                    self._replace(i, results, "timeouts")
        self.stats["items"] += len(tasks)
        return results

    def grade(self, pairs: Iterable[tuple[str, str]], progress=None) -> list[bool]:
        """Grade ``(completion, gold)`` pairs; same order as given."""
        return self._run([("completion", c, g) for c, g in pairs], progress)

    def equivalent(self, pairs: Iterable[tuple[str, str]], progress=None) -> list[bool]:
        """:func:`answers_equivalent` on ``(answer_a, answer_b)`` pairs, in a pool."""
        return self._run([("answers", a, b) for a, b in pairs], progress)

    @classmethod
    def run_one(cls, task: tuple[str, object, object], timeout_s: float) -> bool:
        """One item in a throwaway one-worker pool (for callers outside the main thread)."""
        with cls(workers=1, timeout_s=timeout_s) as pool:
            return pool._run([task])[0]


def grade_many(
    pairs: Sequence[tuple[str, str]],
    timeout_s: float = 5.0,
    workers: int | None = None,
    progress: bool = False,
    pool: GraderPool | None = None,
) -> list[bool]:
    """Grade many ``(completion, gold)`` pairs in a process pool; returns one bool per pair.

    Every item has a wall-clock deadline (``timeout_s`` in the worker, plus a 1 s grace before the
    parent kills and replaces the worker); a hung or crashed worker never stalls the batch.
    ``workers=None`` uses all CPUs. Pass a live :class:`GraderPool` to reuse its workers across
    calls (e.g. once per RL step). With ``workers=1`` and a single pair the work still happens in a
    separate process, so the caller is always protected.
    """
    pairs = list(pairs)
    bar = None
    if progress:
        bar = _progress_bar(len(pairs), "grading")
    try:
        if pool is not None:
            return pool.grade(pairs, bar)
        with GraderPool(workers=workers, timeout_s=timeout_s) as own:
            return own.grade(pairs, bar)
    finally:
        if bar is not None:
            bar.close()


def _progress_bar(total: int, desc: str):
    """repro.progress.progress if the spine provides it, else tqdm."""
    try:
        from repro.progress import progress as _progress  # type: ignore

        return _progress(total=total, desc=desc)
    except Exception:  # noqa: BLE001 - spine missing or different signature
        from tqdm import tqdm

        return tqdm(total=total, desc=desc)
