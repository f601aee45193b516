"""A local Docker engine and stand-ins for AWS's Lambda Python base images, for the container image tests.

No registry is reachable where the tests run, so ``public.ecr.aws/lambda/python:3.12`` (the CPU image's base) and
``public.ecr.aws/lambda/python:3.13`` (the GPU image's) cannot be pulled. Each stand-in is laid out like them: a
Debian root file system (``debootstrap --variant=minbase``: bookworm for 3.12, trixie for 3.13), the Python
(3.12: this machine's pyenv build, at its own prefix; 3.13: trixie's own python3.13), ``awslambdaric`` and boto3
under /var/runtime (manylinux wheels for that Python, cross-installed like ``modelfn build`` does; AWS's images
ship both there), the Lambda Runtime Interface Emulator that ships inside aws-sam-cli, and AWS's
``/lambda-entrypoint.sh`` contract (RIE when ``AWS_LAMBDA_RUNTIME_API`` is unset, else the runtime client).
``sam local invoke`` runs it exactly as it runs AWS's image: its own RIE in front, then the image's entrypoint
and command.

Example:
    >>> with DockerEngine.start(tmp_path) as engine:                  # doctest: +SKIP
    ...     image = build_standin_base(engine, tmp_path / "rootfs", python="3.13")
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import samcli

from modelfn_infra.build import platform_args

PYTHON312_PREFIX = Path("/root/.pyenv/versions/3.12.1")
RIE = Path(samcli.__file__).parent / "local" / "rapid" / "aws-lambda-rie-x86_64"
DEBIAN_MIRROR = "http://deb.debian.org/debian"

ENTRYPOINT = """#!/bin/sh
# AWS's contract for Lambda base images: the handler is the only argument.
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie /var/runtime/bootstrap "$_HANDLER"
else
  exec /var/runtime/bootstrap "$_HANDLER"
fi
"""

BOOTSTRAP = """#!/bin/sh
exec {interpreter} -m awslambdaric "$1"
"""


@dataclass(frozen=True)
class StandIn:
    """How one Python's stand-in base image is made."""

    python: str
    suite: str
    packages: str
    interpreter: str
    prefix: Path | None = None
    """A Python installation copied into the image at its own path (None: the Debian suite's own python)."""

    @property
    def tag(self) -> str:
        return f"modelfn/lambda-python-standin:{self.python}"


STANDINS = {
    "3.12": StandIn("3.12", "bookworm", "libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,zlib1g",
                    str(PYTHON312_PREFIX / "bin" / "python3.12"), PYTHON312_PREFIX),
    "3.13": StandIn("3.13", "trixie", "python3.13,libpython3.13-stdlib", "/usr/bin/python3.13"),
}
STANDIN_TAG = STANDINS["3.12"].tag


class Unavailable(RuntimeError):
    """What the container test needs is missing here; the message says what and why (the test skips with it)."""


@dataclass
class DockerEngine:
    host: str
    pid: int | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, **kwargs)

    @classmethod
    def start(cls, directory: Path) -> "DockerEngine":
        """The engine at DOCKER_HOST when it answers, else a private ``dockerd --iptables=false`` under ``directory``."""
        if not shutil.which("docker"):
            raise Unavailable("no docker client on PATH (.ci/run installs docker.io)")
        if os.environ.get("DOCKER_HOST"):
            engine = cls(os.environ["DOCKER_HOST"])
            if engine.docker("info", timeout=30).returncode == 0:
                return engine
        dockerd = shutil.which("dockerd")
        if not dockerd:
            raise Unavailable("no dockerd on PATH to start a private Docker engine (apt-get install docker.io)")
        directory.mkdir(parents=True, exist_ok=True)
        socket = directory / "docker.sock"
        log = (directory / "dockerd.log").open("w")
        process = subprocess.Popen(
            [dockerd, "--iptables=false", "--host", f"unix://{socket}", "--data-root", str(directory / "data"),
             "--exec-root", str(directory / "exec"), "--pidfile", str(directory / "docker.pid")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        engine = cls(f"unix://{socket}", process.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            if socket.exists() and engine.docker("info", timeout=30).returncode == 0:
                return engine
            time.sleep(0.5)
        engine.stop()
        tail = (directory / "dockerd.log").read_text()[-1500:]
        raise Unavailable(f"dockerd did not start (no privileges for namespaces/overlayfs here?):\n{tail}")

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.killpg(self.pid, signal.SIGKILL)

    def __enter__(self) -> "DockerEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_standin_base(engine: DockerEngine, workdir: Path, python: str = "3.12") -> str:
    """Import the stand-in base image for ``python`` (once per engine) and return its tag."""
    standin = STANDINS[python]
    if engine.docker("image", "inspect", standin.tag).returncode == 0:
        return standin.tag
    if standin.prefix and not Path(standin.interpreter).is_file():
        raise Unavailable(f"no Python {python} at {standin.prefix} to put in the stand-in Lambda base image")
    rootfs = workdir / "rootfs"
    _debootstrap(standin, rootfs)
    runtime = rootfs / "var" / "runtime"
    shutil.rmtree(runtime, ignore_errors=True)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(runtime),
         *platform_args("x86_64"), "--implementation", "cp", "--python-version", python,
         "--only-binary=:all:", "awslambdaric>=3,<5", "boto3>=1.34,<2"],  # AWS's image ships boto3 in /var/runtime
        capture_output=True, text=True, timeout=600,
    )
    if pip.returncode != 0:
        raise Unavailable(f"cannot install awslambdaric for Python {python}: {pip.stderr[-800:]}")
    (runtime / "bootstrap").write_text(BOOTSTRAP.format(interpreter=standin.interpreter))
    (rootfs / "lambda-entrypoint.sh").write_text(ENTRYPOINT)
    (rootfs / "usr" / "local" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(RIE, rootfs / "usr" / "local" / "bin" / "aws-lambda-rie")
    for path in (runtime / "bootstrap", rootfs / "lambda-entrypoint.sh", rootfs / "usr" / "local" / "bin" / "aws-lambda-rie"):
        path.chmod(0o755)
    for name in ("var/task", "opt/python"):
        (rootfs / name).mkdir(parents=True, exist_ok=True)
    archive = workdir / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".")
        if standin.prefix:
            tar.add(standin.prefix, arcname="." + str(standin.prefix),
                    filter=lambda info: None if "/site-packages/" in info.name or "/test/" in info.name else info)
    bin_path = f"{standin.prefix}/bin:" if standin.prefix else ""
    changes = [
        "ENV LAMBDA_TASK_ROOT=/var/task", "ENV LAMBDA_RUNTIME_DIR=/var/runtime", "ENV LANG=en_US.UTF-8",
        "ENV PYTHONPATH=/var/runtime:/opt/python", f"ENV PATH={bin_path}/usr/local/bin:/usr/bin:/bin",
        "WORKDIR /var/task", 'ENTRYPOINT ["/lambda-entrypoint.sh"]',
    ]
    command = ["import"]
    for change in changes:
        command += ["--change", change]
    result = engine.docker(*command, str(archive), standin.tag, timeout=600)
    archive.unlink()
    if result.returncode != 0:
        raise Unavailable(f"docker import of the stand-in base image failed: {result.stderr[-800:]}")
    return standin.tag


def _debootstrap(standin: StandIn, rootfs: Path) -> None:
    """A minimal Debian root file system of the stand-in's suite (one retry: mirrors hiccup)."""
    debootstrap = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None)
    if not debootstrap:
        raise Unavailable("no debootstrap to build a Debian root file system (apt-get install debootstrap)")
    if (rootfs / "bin" / "sh").exists():
        return
    for _attempt in range(2):  # a mirror hiccup ("Couldn't download ... Packages") deserves one retry
        shutil.rmtree(rootfs, ignore_errors=True)
        result = subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={standin.packages}", standin.suite, str(rootfs), DEBIAN_MIRROR],
            capture_output=True, text=True, timeout=1200,
        )
        if result.returncode == 0:
            return
    raise Unavailable(f"debootstrap {standin.suite} failed (is the Debian mirror reachable?):\n"
                      f"{result.stdout[-1000:]}{result.stderr[-1000:]}")
