"""``EstimatorWorker``: fit scikit-learn estimators in a child process that can be stopped.

A scikit-learn ``fit`` runs in compiled code that Python cannot interrupt, so one slow model
(liblinear's linear SVM takes about 26 s on 3,500 MNIST images) overruns any time budget
when it runs in the caller's process. :class:`EstimatorWorker` fits in a child Python process
instead: the caller waits for the scores with a timeout, and stops the child (terminate, then
kill) when the timeout passes. One worker serves many fits; it starts on first use (or on
:meth:`EstimatorWorker.start`) and ends on :meth:`EstimatorWorker.close`.

How the child is made, and why:

* a fresh interpreter (``subprocess``), never ``fork``: torch's and OpenMP's thread pools do
  not survive a fork;
* started with ``python -c``, so that it never re-runs the caller's ``__main__`` script as
  ``multiprocessing``'s spawn does (a script that calls ``diagnose`` without an
  ``if __name__ == "__main__"`` guard would start a second diagnosis in the child);
* it loads this file alone, not the ``deepdx.diagnose`` package, so it imports NumPy and
  scikit-learn but not torch, which halves its start-up time.

Tasks and replies are pickles over the child's stdin and stdout (what the estimators print
goes to stderr). A task carries the estimator, the arrays, and the caller's BLAS and OpenMP
thread counts, which the child adopts: a model fitted there scores exactly as it would here.
The child also exits by itself when the caller dies (its stdin reaches end of file).

Symbols
-------
t_start    seconds the child takes to start: about 1 s, paid once per worker
timeout    seconds the caller waits for one fit before the child is stopped
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import pickle
import subprocess
import sys
import traceback
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from time import perf_counter
from types import TracebackType
from typing import Any, NamedTuple, Self

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from deepdx.exceptions import DeepdxError

__all__ = [
    "EXIT_GRACE_S",
    "EstimatorWorker",
    "FitScores",
    "WorkerError",
    "WorkerTimeout",
    "fit_and_score",
]

#: Seconds a terminated child may take to exit before it is killed.
EXIT_GRACE_S = 0.5

# The child's program: load this file under its own name without importing its package,
# then serve. argv: [-c, this file, *the caller's sys.path].
_BOOT = """\
import importlib.util, sys
sys.path[:] = sys.argv[2:]
spec = importlib.util.spec_from_file_location("deepdx.diagnose._isolated", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
module.serve()
"""

#: A caught warning as plain data: (category, message, filename, lineno).
CaughtWarning = tuple[type[Warning], str, str, int]


class WorkerTimeout(DeepdxError, TimeoutError):
    """A fit did not finish within its timeout; the worker process was stopped."""


class WorkerError(DeepdxError, RuntimeError):
    """The worker process died or sent a reply that could not be read."""


class FitScores(NamedTuple):
    """What :func:`fit_and_score` measured on one estimator.

    Attributes
    ----------
    train_score, test_score : float
        ``estimator.score`` on the train and test arrays.
    fit_seconds : float
        Wall-clock seconds of ``fit``.
    caught : list of (category, message, filename, lineno)
        Every warning raised while fitting and scoring, in order.
    """

    train_score: float
    test_score: float
    fit_seconds: float
    caught: list[CaughtWarning]


def fit_and_score(estimator: Any, arrays: tuple[np.ndarray, ...]) -> FitScores:
    """Fit ``estimator`` on the train arrays and score it on both splits, catching warnings.

    Parameters
    ----------
    estimator : scikit-learn estimator
        Unfitted; it is fitted in place.
    arrays : tuple of ndarray
        ``(X_train, y_train, X_test, y_test)``, X of shape (n, d).

    Returns
    -------
    FitScores

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> X, y = np.zeros((4, 2)), np.array([0, 1, 1, 1])
    >>> scores = fit_and_score(DummyClassifier(), (X, y, X, y))
    >>> scores.train_score, scores.caught
    (0.75, [])
    """
    X_train, y_train, X_test, y_test = arrays
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = perf_counter()
        estimator.fit(X_train, y_train)
        seconds = perf_counter() - start
        train_score = float(estimator.score(X_train, y_train))
        test_score = float(estimator.score(X_test, y_test))
    plain = [(w.category, str(w.message), w.filename, w.lineno) for w in caught]
    return FitScores(train_score, test_score, seconds, plain)


class EstimatorWorker:
    """A child Python process that fits scikit-learn estimators and can be stopped at once.

    Use it as a context manager, so that the child always ends. After a timeout or a crash
    the worker is stopped; the next fit starts a fresh child.

    Parameters
    ----------
    preload : sequence of str, default=()
        Modules the child imports as it starts, so that a worker started early (see
        :meth:`start`) has them ready before the first fit.

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> X, y = np.zeros((4, 2)), np.array([0, 1, 1, 1])
    >>> with EstimatorWorker() as worker:
    ...     worker.fit_and_score(DummyClassifier(), (X, y, X, y), timeout=60.0).test_score
    0.75
    """

    def __init__(self, *, preload: Sequence[str] = ()) -> None:
        self.preload = tuple(preload)
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EstimatorWorker(pid={self.pid}, preload={self.preload!r})"

    @property
    def pid(self) -> int | None:
        """The child's process id; None when no child is running."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the child if it is not running; return at once while it boots (t_start)."""
        if self._process is None:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, __file__, *sys.path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert self._process.stdin is not None
            pickle.dump(self.preload, self._process.stdin)  # a few bytes: fits the pipe
            self._process.stdin.flush()

    def fit_and_score(
        self, estimator: Any, arrays: tuple[np.ndarray, ...], *, timeout: float | None = None
    ) -> FitScores:
        """Run :func:`fit_and_score` in the child and return its result.

        Parameters
        ----------
        estimator : scikit-learn estimator
            Unfitted and picklable (its class importable by module and name); the caller's
            copy is not fitted.
        arrays : tuple of ndarray
            ``(X_train, y_train, X_test, y_test)``.
        timeout : float, optional
            Seconds to wait, the child's start-up included; None waits without limit.

        Returns
        -------
        FitScores

        Raises
        ------
        WorkerTimeout
            If no reply came within ``timeout``; the child is stopped.
        WorkerError
            If the child died (it is stopped and its error output is on stderr).
        Exception
            Whatever ``fit`` or ``score`` raised in the child, re-raised here with the
            child's traceback as a note.
        """
        self.start()
        process = self._process
        assert process is not None
        task = (estimator, arrays, _thread_limits())
        finished = False
        try:
            with ThreadPoolExecutor(max_workers=1) as io:
                reply = io.submit(_exchange, process, task)
                try:
                    finished = bool(wait([reply], timeout=_wait_seconds(timeout)).done)
                finally:  # a timeout or an interrupt: end the child, the exchange then returns
                    if not finished:
                        _stop(process)
        finally:
            if not finished:
                self.close()
        if not finished:
            raise WorkerTimeout(f"the worker gave no reply within {timeout:.1f} s; stopped.")
        return self._unpack(reply)

    def close(self) -> None:
        """End the child at once (terminate, then kill if it lingers); no-op when none runs."""
        process, self._process = self._process, None
        if process is None:
            return
        _stop(process)
        for pipe in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):  # unsent bytes of a stopped exchange
                if pipe is not None:
                    pipe.close()

    def _unpack(self, reply: Future[Any]) -> FitScores:
        """Return the scores of a finished exchange, or raise what it carried."""
        try:
            status, *payload = reply.result()
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            self.close()
            raise WorkerError(
                f"the worker process ended while fitting ({type(exc).__name__}); its error "
                "output above says why. Fit the estimator in this process to see the error."
            ) from exc
        if status == "ok":
            return payload[0]
        error, text = payload
        if error is None:
            raise WorkerError(f"fitting in the worker process failed:\n{text}")
        error.add_note(f"raised in the worker process:\n{text}")
        raise error


def serve() -> None:
    """Import the preloads, then answer tasks from stdin on stdout until stdin closes."""
    tasks, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what estimators print goes to stderr, never into the replies
    for name in pickle.load(tasks):
        importlib.import_module(name)
    while True:
        try:
            estimator, arrays, limits = pickle.load(tasks)
        except EOFError:
            return
        try:
            with threadpool_limits(limits=limits):
                reply: tuple[Any, ...] = ("ok", fit_and_score(estimator, arrays))
        except Exception as exc:
            reply = ("error", exc, traceback.format_exc())
        try:
            payload = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # an unpicklable error: send its traceback alone
            payload = pickle.dumps(("error", None, reply[-1]))
        replies.write(payload)
        replies.flush()


# ----------------------------------------------------------------------------- helpers


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the child and wait for it; kill it if it has not exited in EXIT_GRACE_S."""
    process.terminate()
    try:
        process.wait(timeout=EXIT_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _exchange(process: subprocess.Popen[bytes], task: tuple[Any, ...]) -> tuple[Any, ...]:
    """Send one task to the child and read its reply (blocking)."""
    assert process.stdin is not None and process.stdout is not None
    pickle.dump(task, process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
    process.stdin.flush()
    return pickle.load(process.stdout)


def _thread_limits() -> dict[str, int]:
    """Return this process's thread count per threadpool API (the smallest pool of each)."""
    limits: dict[str, int] = {}
    for pool in threadpool_info():
        api, n = pool["user_api"], pool["num_threads"]
        if isinstance(n, int):
            limits[api] = min(limits.get(api, n), n)
    return limits


def _wait_seconds(timeout: float | None) -> float | None:
    """Return ``timeout`` for ``concurrent.futures.wait``: None for no limit, at least 0."""
    return None if timeout is None or math.isinf(timeout) else max(0.0, timeout)
