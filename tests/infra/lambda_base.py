"""A local Docker engine and a stand-in for AWS's Lambda python3.12 base image, for the container image test.

No registry is reachable where the tests run, so ``public.ecr.aws/lambda/python:3.12`` cannot be pulled. The
stand-in is laid out like it: a Debian bookworm root file system (``debootstrap --variant=minbase``), Python
3.12 (this machine's pyenv build, at its own prefix), ``awslambdaric`` and boto3 under /var/runtime (cp312
manylinux wheels, cross-installed like ``modelfn build`` does; AWS's image ships both there), the Lambda Runtime Interface Emulator that ships inside
aws-sam-cli, and AWS's ``/lambda-entrypoint.sh`` contract (RIE when ``AWS_LAMBDA_RUNTIME_API`` is unset, else
the runtime client). ``sam local invoke`` runs it exactly as it runs AWS's image: its own RIE in front,
then the image's entrypoint and command.

Example:
    >>> with DockerEngine.start(tmp_path) as engine:                  # doctest: +SKIP
    ...     image = build_standin_base(engine, tmp_path / "rootfs")
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

STANDIN_TAG = "modelfn/lambda-python-standin:3.12"
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

BOOTSTRAP = f"""#!/bin/sh
exec {PYTHON312_PREFIX}/bin/python3.12 -m awslambdaric "$1"
"""


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


def build_standin_base(engine: DockerEngine, workdir: Path) -> str:
    """Import the stand-in base image (once per engine) and return its tag."""
    if engine.docker("image", "inspect", STANDIN_TAG).returncode == 0:
        return STANDIN_TAG
    if not (PYTHON312_PREFIX / "bin" / "python3.12").is_file():
        raise Unavailable(f"no Python 3.12 at {PYTHON312_PREFIX} to put in the stand-in Lambda base image")
    debootstrap = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None)
    if not debootstrap:
        raise Unavailable("no debootstrap to build a Debian root file system (apt-get install debootstrap)")
    rootfs = workdir / "rootfs"
    if not (rootfs / "bin" / "sh").exists():
        for _attempt in range(2):  # a mirror hiccup ("Couldn't download ... Packages") deserves one retry
            shutil.rmtree(rootfs, ignore_errors=True)
            result = subprocess.run(
                [debootstrap, "--variant=minbase", "--include=libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,zlib1g",
                 "bookworm", str(rootfs), DEBIAN_MIRROR],
                capture_output=True, text=True, timeout=1200,
            )
            if result.returncode == 0:
                break
        if result.returncode != 0:
            raise Unavailable(f"debootstrap failed (is the Debian mirror reachable?):\n{result.stdout[-1000:]}{result.stderr[-1000:]}")
    runtime = rootfs / "var" / "runtime"
    shutil.rmtree(runtime, ignore_errors=True)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(runtime),
         *platform_args("x86_64"), "--implementation", "cp", "--python-version", "3.12",
         "--only-binary=:all:", "awslambdaric>=3,<5", "boto3>=1.34,<2"],  # AWS's image ships boto3 in /var/runtime
        capture_output=True, text=True, timeout=600,
    )
    if pip.returncode != 0:
        raise Unavailable(f"cannot install awslambdaric for Python 3.12: {pip.stderr[-800:]}")
    (runtime / "bootstrap").write_text(BOOTSTRAP)
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
        tar.add(PYTHON312_PREFIX, arcname="." + str(PYTHON312_PREFIX),
                filter=lambda info: None if "/site-packages/" in info.name or "/test/" in info.name else info)
    changes = [
        "ENV LAMBDA_TASK_ROOT=/var/task", "ENV LAMBDA_RUNTIME_DIR=/var/runtime", "ENV LANG=en_US.UTF-8",
        "ENV PYTHONPATH=/var/runtime:/opt/python", f"ENV PATH={PYTHON312_PREFIX}/bin:/usr/local/bin:/usr/bin:/bin",
        "WORKDIR /var/task", 'ENTRYPOINT ["/lambda-entrypoint.sh"]',
    ]
    command = ["import"]
    for change in changes:
        command += ["--change", change]
    result = engine.docker(*command, str(archive), STANDIN_TAG, timeout=600)
    archive.unlink()
    if result.returncode != 0:
        raise Unavailable(f"docker import of the stand-in base image failed: {result.stderr[-800:]}")
    return STANDIN_TAG
