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

import functools
import gc
import logging
import math
import multiprocessing as mp
import os
import re
import signal
import threading
import time
from collections import deque
from multiprocessing.connection import wait as _wait_connections
from typing import Iterable, Iterator, Sequence

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


def _box_brace(text: str, start: int, end: int, pairs: dict[int, int]) -> int | None:
    """If a box command starts at ``start``, the index of its ``{`` when that brace closes
    before ``end``; else None."""
    for cmd in _BOX_COMMANDS:
        if text.startswith(cmd, start):
            j = start + len(cmd)
            while j < end and text[j] in " \t\n":
                j += 1
            # `\boxed` must be followed by `{` (not e.g. `\boxedfoo`) and the brace must close.
            if j < end and text[j] == "{" and pairs.get(j, end) < end:
                return j
    return None


def extract_boxed(text: str | None) -> str | None:
    """Content of the last balanced ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``.

    "Last" is the box that closes last, i.e. the outermost of nested boxes; if that content is
    itself exactly one box (``\\boxed{\\boxed{5}}``), it is unwrapped. Unbalanced boxes are
    ignored. Returns the stripped content (possibly ``""`` for ``\\boxed{}``), or None when there
    is no balanced box. Runs in O(len(text)), also for deeply nested boxes.
    """
    if not text:
        return None
    pairs = _match_braces(text)
    best: tuple[int, int] | None = None  # (content_start, content_end) of the box closing last
    for cmd in _BOX_COMMANDS:
        start = text.find(cmd)
        while start != -1:
            j = _box_brace(text, start, len(text), pairs)
            if j is not None and (best is None or pairs[j] > best[1]):
                best = (j + 1, pairs[j])
            start = text.find(cmd, start + 1)
    if best is None:
        return None
    cs, ce = best
    while True:  # unwrap \boxed{\boxed{...}}: O(1) per level thanks to `pairs`
        while cs < ce and text[cs].isspace():
            cs += 1
        while ce > cs and text[ce - 1].isspace():
            ce -= 1
        j = _box_brace(text, cs, ce, pairs)
        if j is None or pairs[j] != ce - 1:
            return text[cs:ce]
        cs, ce = j + 1, ce - 1


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


@functools.lru_cache(maxsize=4096)
def _parse_answer(answer: str) -> tuple:
    """math-verify's parse of one extracted answer (cached: golds repeat across samples)."""
    from math_verify import parse

    return tuple(parse("\\boxed{" + answer + "}", parsing_timeout=None))


def _verify_answers(gold: str, pred: str) -> bool:
    """math-verify on two extracted answers, gold first; no timers of its own (see module doc)."""
    from math_verify import verify

    gold_parsed = list(_parse_answer(gold))
    pred_parsed = list(_parse_answer(pred))
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


_INTEGER = re.compile(r"[+-]?\d{1,30}")


def integer_literals_equal(a: str, b: str) -> bool | None:
    """For two integer literals (``-12``, ``+7``, ``007``): whether they are equal -- math-verify's own verdict
    on them (tested against it) at ~1 us instead of ~2 ms, which matters for maj@k and EMPO's clustering on
    the arithmetic task, where every answer is an integer. None when either is not an integer literal."""
    a, b = a.strip(), b.strip()
    if _INTEGER.fullmatch(a) and _INTEGER.fullmatch(b):
        return int(a) == int(b)
    return None


def _equivalent_inline(a: str | None, b: str | None, timeout_s: float) -> bool:
    a, b = _clean(a), _clean(b)
    if a is None or b is None:
        return False
    if a == b:
        return True
    fast = integer_literals_equal(a, b)
    if fast is not None:
        return fast
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
def _vm_size_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _worker_main(conn, timeout_s: float, memory_limit_mb: int | None) -> None:
    """Worker loop: say ``("ready",)``, then answer ``(idx, kind, x, y)`` with ``(idx, bool)``.

    ``None`` stops it. The address-space limit is *added* to what the worker already maps (a
    worker forked from a process holding a model or CUDA mappings starts large).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills us
    if memory_limit_mb:
        try:
            import resource

            limit = _vm_size_bytes() + int(memory_limit_mb) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError, ImportError):
            pass
    try:
        import math_verify  # noqa: F401 - pay the sympy import before saying ready
    except Exception:  # noqa: BLE001 - grading will fail (False) and say so in the results
        pass
    try:
        conn.send(("ready",))
    except (BrokenPipeError, OSError):
        return
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
    # fork: workers start instantly with math-verify already imported and never re-import the
    # caller's __main__ (forkserver/spawn do, which costs seconds when it imports torch). The
    # workers only run sympy, so the usual fork-with-threads hazards of the parent do not apply.
    methods = mp.get_all_start_methods()
    return "fork" if "fork" in methods else "spawn"


class _Worker:
    def __init__(self, ctx, timeout_s: float, memory_limit_mb: int | None):
        parent, child = ctx.Pipe(duplex=True)
        self.conn = parent
        self.proc = ctx.Process(target=_worker_main, args=(child, timeout_s, memory_limit_mb), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.items: deque[int] = deque()  # in flight, FIFO; the head is being graded
        self.deadline = time.monotonic() + STARTUP_TIMEOUT_S  # until "ready", then the head's
        self.answered = 0

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(timeout=5)
        except Exception:  # noqa: BLE001
            pass
        self.conn.close()


#: Seconds a new worker may take to import math-verify and report ready.
STARTUP_TIMEOUT_S = 120.0


class GraderPool:
    """A reusable pool of grading processes with a wall-clock deadline per item.

    Each worker grades one item at a time in its own main thread (so the in-process SIGALRM timer
    works); ``prefetch`` items are queued per worker so it never waits for the parent. The parent
    kills any worker whose current item has run ``timeout_s + grace_s`` seconds, or that died,
    marks that item False, re-queues the worker's other items and starts a replacement, so a batch
    always finishes. Deadlines start only once a worker has reported ready.

    Use as a context manager or call :meth:`close`. ``stats`` counts ``timeouts`` (killed for
    overrunning) and ``crashes`` (died) over the pool's lifetime.
    """

    def __init__(
        self,
        workers: int | None = None,
        timeout_s: float = 5.0,
        grace_s: float = 1.0,
        start_method: str | None = None,
        memory_limit_mb: int | None = 4096,
        prefetch: int = 2,
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
        if prefetch < 1:
            raise ValueError(f"GraderPool: prefetch must be >= 1, got {prefetch}")
        self.prefetch = int(prefetch)
        method = start_method or _default_start_method()
        self._ctx = mp.get_context(method)
        if method == "fork":
            import math_verify  # noqa: F401 - imported once here, inherited by every worker

            if _in_main_thread():  # warm math-verify's lazily built regexes/grammars once, too
                _equivalent_inline("\\frac{1}{2}", "0.5", timeout_s)
        elif method == "forkserver":
            self._ctx.set_forkserver_preload(["benchmarks.math.grading", "math_verify"])
        self._pool: list[_Worker] = []
        self.stats = {"timeouts": 0, "crashes": 0, "items": 0}
        self._startup_failures = 0  # consecutive workers that died before answering anything

    # -- lifecycle ----------------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        if self._ctx.get_start_method() != "fork":
            return _Worker(self._ctx, self.timeout_s, self.memory_limit_mb)
        # Freeze the parent's objects out of the collector's reach while forking, so the child's
        # collections do not touch (and copy-on-write) every inherited page.
        gc.freeze()
        try:
            return _Worker(self._ctx, self.timeout_s, self.memory_limit_mb)
        finally:
            gc.unfreeze()

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
    def _replace(self, i: int, reason: str, todo: deque | None = None) -> int | None:
        """Kill worker i and start a new one. Its current item is returned (it failed); the items
        queued behind it go back to the front of ``todo``."""
        w = self._pool[i]
        lost = w.items.popleft() if w.items else None
        if todo is not None:
            todo.extendleft(reversed(w.items))
        self.stats[reason] += 1
        w.kill()
        if w.answered == 0 and (reason == "crashes" or not w.ready):
            self._startup_failures += 1
            if self._startup_failures >= 3:
                raise RuntimeError(
                    "GraderPool: grading workers keep dying before grading anything "
                    f"(start method {self._ctx.get_start_method()!r}). If grade_many is called "
                    "from a script with a spawn/forkserver start method, protect the script's top "
                    "level with `if __name__ == '__main__':`."
                )
        self._pool[i] = self._spawn()
        return lost

    def iter_results(self, tasks: Sequence[tuple[str, object, object]]) -> Iterator[tuple[int, bool]]:
        """Yield ``(index, result)`` for every task as it finishes (any order)."""
        if not tasks:
            return
        while len(self._pool) < min(self.workers, len(tasks)):
            self._pool.append(self._spawn())
        # Items sharing a gold answer go to the same worker back to back, so its cached parse of
        # that gold is reused (parsing dominates grading time).
        def gold_of(idx: int):
            kind, x, y = tasks[idx]
            return x if kind == "answers" else y

        todo = deque(sorted(range(len(tasks)), key=lambda i: (str(gold_of(i)), i)))
        remaining = len(tasks)
        budget = self.timeout_s + self.grace_s
        cap = self.prefetch + 16
        while remaining:
            for i, w in enumerate(list(self._pool)):  # top up every ready worker's queue
                while w.ready and todo and (
                    len(w.items) < self.prefetch
                    or (len(w.items) < cap and gold_of(todo[0]) == gold_of(w.items[-1]))
                ):
                    idx = todo.popleft()
                    try:
                        w.conn.send((idx, *tasks[idx]))
                    except (BrokenPipeError, OSError):  # died: replace, retry its items
                        todo.appendleft(idx)
                        lost = self._replace(i, "crashes", todo)
                        if lost is not None:
                            remaining -= 1
                            yield lost, False
                        break
                    if not w.items:
                        w.deadline = time.monotonic() + budget
                    w.items.append(idx)
            waiting = [w for w in self._pool if w.items or not w.ready]
            now = time.monotonic()
            wait_s = max(0.0, min(w.deadline for w in waiting) - now) if waiting else 0.0
            ready = {id(c) for c in _wait_connections([w.conn for w in waiting], timeout=wait_s)}
            for i, w in enumerate(list(self._pool)):
                if w not in waiting:
                    continue
                if id(w.conn) in ready:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        lost = self._replace(i, "crashes", todo)
                        if lost is not None:
                            remaining -= 1
                            yield lost, False
                        continue
                    if msg == ("ready",):
                        w.ready, w.deadline = True, math.inf
                        continue
                    idx, ok = msg
                    w.items.popleft()  # FIFO: the answer is for the head
                    w.deadline = time.monotonic() + budget if w.items else math.inf
                    w.answered += 1
                    self._startup_failures = 0
                    remaining -= 1
                    yield idx, ok
                elif time.monotonic() >= w.deadline:
                    lost = self._replace(i, "timeouts" if w.ready else "crashes", todo)
                    if lost is not None:
                        remaining -= 1
                        yield lost, False
        self.stats["items"] += len(tasks)

    def _collect(self, tasks, progress_desc: str | None) -> list[bool]:
        results = [False] * len(tasks)
        it = self.iter_results(tasks)
        if progress_desc:
            from repro.progress import progress as _progress

            it = _progress(it, desc=progress_desc, total=len(tasks))
        for idx, ok in it:
            results[idx] = ok
        return results

    def grade(self, pairs: Iterable[tuple[str, str]], progress: str | None = None) -> list[bool]:
        """Grade ``(completion, gold)`` pairs; results in the order given."""
        return self._collect([("completion", c, g) for c, g in pairs], progress)

    def equivalent(self, pairs: Iterable[tuple[str, str]], progress: str | None = None) -> list[bool]:
        """:func:`answers_equivalent` on ``(answer_a, answer_b)`` pairs, in the pool."""
        return self._collect([("answers", a, b) for a, b in pairs], progress)

    @classmethod
    def run_one(cls, task: tuple[str, object, object], timeout_s: float) -> bool:
        """One item in a throwaway one-worker pool (for callers outside the main thread)."""
        with cls(workers=1, timeout_s=timeout_s) as pool:
            return pool._collect([task], None)[0]


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
    calls (e.g. once per RL step). Even one pair is graded in a separate process, so the caller
    is always protected.
    """
    pairs = list(pairs)
    desc = "grading" if progress else None
    if pool is not None:
        return pool.grade(pairs, desc)
    with GraderPool(workers=workers, timeout_s=timeout_s) as own:
        return own.grade(pairs, desc)
