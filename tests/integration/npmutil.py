"""
tests/integration/npmutil.py — install an npm package once into build/, for the tests that run
Fastly's own clients (the CLI binary package, the JavaScript API client).

    path = npm_install("fastly", os.path.join(ROOT, "build", "fastly-js"),
                       os.path.join("node_modules", "fastly", "package.json"))

The package goes into a temporary directory beside `dest` and is renamed into place only when
`wanted` (a path inside it) exists, under a file lock, so the plain and the sanitizer runs may
start together and a failed or cut install never leaves a half-made `dest`. An install that
cannot be had (no npm, no registry, an error) raises unittest.SkipTest with npm's own words;
nothing else is skipped.
"""

import fcntl
import os
import shutil
import subprocess
import tempfile
import unittest


def npm_install(spec, dest, wanted):
    """Install `spec` (package[@version]) into `dest` unless `dest`/`wanted` exists; returns the
    full path of `wanted`."""
    path = os.path.join(dest, wanted)
    if os.path.exists(path):
        return path
    npm = shutil.which("npm")
    if npm is None:
        raise unittest.SkipTest("npm is not installed, so %s cannot be fetched" % spec)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(path):
            return path
        tmp = tempfile.mkdtemp(prefix=os.path.basename(dest) + ".", dir=os.path.dirname(dest))
        try:
            try:
                p = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--no-package-lock",
                                    "--ignore-scripts", "--prefix", tmp, spec],
                                   stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                                   timeout=300, cwd=tmp)
            except subprocess.TimeoutExpired:
                raise unittest.SkipTest("npm install %s did not finish in 300 s" % spec)
            if p.returncode != 0 or not os.path.exists(os.path.join(tmp, wanted)):
                errors = [l for l in (p.stdout + p.stderr).splitlines() if "error" in l.lower()]
                raise unittest.SkipTest("npm install %s failed (exit %d): %s" % (
                    spec, p.returncode, "; ".join(errors[:3]) or "no error message"))
            shutil.rmtree(dest, ignore_errors=True)
            os.rename(tmp, dest)
            tmp = None
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
    return path
