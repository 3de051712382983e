#!/usr/bin/env python3
"""
tests/integration/run.py — run every tests/integration/test_*.py (unittest) against the
real binary.

    python3 tests/integration/run.py [--binary PATH] [-k PATTERN] [-j N] [-v] [--list]

-k PATTERN   only tests whose id (test_file.Class.test_name) matches; plain text is a
             substring match, * and ? are wildcards; repeatable (any may match).
--binary     the edgecache binary (default: $EDGECACHE_BINARY or build/edgecache).
-j N         run N test classes at once, each in its own python process (default
             $INTEGRATION_JOBS or 4; the tests mostly wait on timers, not on the CPU).
             -j 1 runs everything in this process, in order.

Each test gets a deadline (--test-timeout, scaled for sanitizer builds); a test that
overruns fails with a TimeoutError and its cleanups still stop every process it started.
The last line printed is exactly "integration: N passed, N failed" (", N skipped" follows
when tests were skipped); the exit status is non-zero when anything failed.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class TestTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise TestTimeout("test exceeded its deadline (run.py --test-timeout)")


def _on_term(signum, frame):
    # unwind like Ctrl-C so that cleanups and the harness stop every server we started
    raise KeyboardInterrupt()


SUMMARY_RE = re.compile(r"^integration: (\d+) passed, (\d+) failed(?:, (\d+) skipped)?$")


def class_key(test):
    """module.Class of a test id (import failures group under unittest.loader._FailedTest)."""
    return test.id().split(" ")[0].rsplit(".", 1)[0]


def run_parallel(classes, jobs, child_args):
    """Run each class in a child `run.py --classes KEY`, at most `jobs` at once; print each
    child's report when it ends. Returns (passed, failed_ids, skipped)."""
    pending = list(classes)
    running = []  # (key, proc, output file)
    passed = skipped = 0
    failed_ids = set()
    try:
        while pending or running:
            while pending and len(running) < jobs:
                key = pending.pop(0)
                out = tempfile.TemporaryFile()
                proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--classes", key] + child_args,
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
                running.append((key, proc, out))
            for item in list(running):
                key, proc, out = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                out.seek(0)
                text = out.read().decode("utf-8", "replace")
                out.close()
                summary = None
                for line in text.splitlines():
                    m = SUMMARY_RE.match(line)
                    if m:
                        summary = m
                    elif line.startswith("integration: FAILED "):
                        failed_ids.add(line[len("integration: FAILED "):].strip())
                    elif not line.startswith("integration: "):
                        print(line)
                if summary is None:
                    print("  ERROR %s: the test process exited with %s without a summary" % (key, proc.returncode))
                    failed_ids.add(key + " (runner)")
                else:
                    passed += int(summary.group(1))
                    skipped += int(summary.group(3) or 0)
                    if int(summary.group(2)) and not any(i.startswith(key + ".") for i in failed_ids):
                        failed_ids.add(key + " (unnamed failure)")
                sys.stdout.flush()
            if running:
                time.sleep(0.05)
    finally:
        for key, proc, out in running:  # interrupted: let the children clean up, then make sure
            proc.send_signal(signal.SIGTERM)
        for key, proc, out in running:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return passed, failed_ids, skipped


class Result(unittest.TestResult):
    """Prints one line per test as it finishes, plus the failure details and the stderr
    tail of every edgecache the failing test started."""

    def __init__(self, harness, per_test_timeout, verbose):
        super().__init__()
        self.harness = harness
        self.per_test_timeout = per_test_timeout
        self.verbose = verbose
        self.passed = 0
        self._t0 = 0.0
        self._reported = set()

    def startTest(self, test):
        super().startTest(test)
        self.harness._registry.take_created()
        self._t0 = time.monotonic()
        if self.verbose:
            print("  ..   %s" % test.id(), flush=True)
        if self.per_test_timeout:
            signal.setitimer(signal.ITIMER_REAL, self.per_test_timeout)

    def stopTest(self, test):
        signal.setitimer(signal.ITIMER_REAL, 0)
        super().stopTest(test)

    def _line(self, word, test, extra=""):
        print("  %-5s %s (%.2fs)%s" % (word, test.id(), time.monotonic() - self._t0, extra), flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
        self._line("ok", test)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line("skip", test, ": " + reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.passed += 1
        self._line("xfail", test)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._line("XPASS", test)

    def _details(self, word, test, err):
        self._line(word, test)
        text = "".join(traceback.format_exception(*err))
        print("\n".join("        " + line for line in text.rstrip().splitlines()), flush=True)
        for edge in self.harness._registry.created:
            key = id(edge)
            tail = edge.stderr_tail(25)
            if key in self._reported or tail in text:
                continue
            self._reported.add(key)
            print("        edgecache %s:" % " ".join(edge.command()[1:]), flush=True)
            print("\n".join("        " + line for line in tail.splitlines()), flush=True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._details("FAIL", test, err)

    def addError(self, test, err):
        super().addError(test, err)
        self._details("ERROR", test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._details("FAIL", subtest, err)


def main(argv=None):
    ap = argparse.ArgumentParser(description="edgecache integration tests")
    ap.add_argument("--binary", help="edgecache binary (default $EDGECACHE_BINARY or build/edgecache)")
    ap.add_argument("-k", dest="patterns", action="append", default=[], help="run only tests matching")
    ap.add_argument("-v", "--verbose", action="store_true", help="also print each test as it starts")
    ap.add_argument("--list", action="store_true", help="list the selected tests and exit")
    ap.add_argument("--test-timeout", type=float, default=60.0,
                    help="seconds per test before it is failed (scaled for sanitizer builds)")
    ap.add_argument("-j", "--jobs", type=int, default=int(os.environ.get("INTEGRATION_JOBS", "4")),
                    help="test classes run at once in separate processes (1 = serial, in-process)")
    ap.add_argument("--classes", help=argparse.SUPPRESS)  # internal: the child of a parallel run
    args = ap.parse_args(argv)

    if args.binary:
        os.environ["EDGECACHE_BINARY"] = os.path.abspath(args.binary)
    binary = os.path.abspath(os.environ.get("EDGECACHE_BINARY") or
                             os.path.join(HERE, "..", "..", "build", "edgecache"))
    os.environ["EDGECACHE_BINARY"] = binary
    if "EDGECACHE_TIMEOUT_SCALE" not in os.environ:
        sanitized = "asan" in binary or "san" in os.environ.get("SANITIZE", "")
        os.environ["EDGECACHE_TIMEOUT_SCALE"] = "3" if sanitized else "1"

    sys.path.insert(0, HERE)
    import harness  # noqa: E402  (after the environment is set)
    harness.set_binary(binary)

    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = [p if ("*" in p or "?" in p) else "*%s*" % p for p in args.patterns]
    suite = loader.discover(start_dir=HERE, pattern="test_*.py", top_level_dir=HERE)

    def flatten(s):
        for t in s:
            if isinstance(t, unittest.TestSuite):
                yield from flatten(t)
            else:
                yield t

    tests = list(flatten(suite))
    if args.classes:
        wanted = set(args.classes.split(","))
        tests = [t for t in tests if class_key(t) in wanted]
    if args.list:
        for t in tests:
            print(t.id())
        return 0

    if not os.path.exists(binary):
        print("integration: binary not found: %s (make build/edgecache, or pass --binary)" % binary)
        print("integration: 0 passed, 1 failed")
        return 1

    signal.signal(signal.SIGTERM, _on_term)
    t0 = time.monotonic()
    classes = list(dict.fromkeys(class_key(t) for t in tests))
    if not args.classes:
        print("integration: binary %s (timeout scale %s, %d tests in %d classes, -j %d)" % (
            binary, os.environ["EDGECACHE_TIMEOUT_SCALE"], len(tests), len(classes), max(1, args.jobs)), flush=True)
    if args.jobs > 1 and len(classes) > 1:
        child_args = ["--binary", binary, "--test-timeout", str(args.test_timeout)]
        for p in args.patterns:
            child_args += ["-k", p]
        if args.verbose:
            child_args.append("-v")
        try:
            passed, failed_ids, skipped = run_parallel(classes, args.jobs, child_args)
        except KeyboardInterrupt:
            print("integration: interrupted", flush=True)
            passed, failed_ids, skipped = 0, {"(interrupted)"}, 0
        ran = len(tests)
    else:
        signal.signal(signal.SIGALRM, _on_alarm)
        per_test = args.test_timeout * harness.timeout_scale()
        result = Result(harness, per_test, args.verbose)
        try:
            unittest.TestSuite(tests).run(result)
        except KeyboardInterrupt:
            print("integration: interrupted", flush=True)
            result.errors.append((None, "interrupted"))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            harness._registry.kill_all()
        # a test that fails in its body and again in its cleanup counts once
        failed_ids = {t.id() if t is not None else "(interrupted)" for t, _ in result.failures + result.errors}
        failed_ids |= {t.id() for t in result.unexpectedSuccesses}
        failed_ids = {i.split(" ")[0] for i in failed_ids}  # subtests count as their test
        passed, skipped, ran = result.passed, len(result.skipped), result.testsRun

    failed = len(failed_ids)
    for test_id in sorted(failed_ids):
        print("integration: FAILED %s" % test_id)
    print("integration: %.1fs" % (time.monotonic() - t0))
    line = "integration: %d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line, flush=True)
    return 1 if failed or ran == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
