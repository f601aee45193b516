"""A local AWS for ``modelfn local --moto`` and the demos: moto's server on 127.0.0.1, with the template's buckets,
queues and tables created and ``events/data/`` copied into the data bucket (the objects the sample S3, SQS and
async events name).

The server binds 127.0.0.1 on a free port, ``AWS_ENDPOINT_URL`` points every SDK call of this process and of the
function sandboxes it starts at it, and leaving the context stops it.

Example:
    >>> with LocalApp("template.yaml") as app, LocalCloud(app) as cloud:          # doctest: +SKIP
    ...     app.invoke("DigitsFunction", json.load(open("events/s3-put.json")))
    ...     cloud.results()
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from .eventsources import EventSources, Invoke, app_invoker
from .sandbox import free_port

EVENT_DATA = Path(__file__).resolve().parents[3] / "events" / "data"
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL",)


class LocalCloud:
    """moto on 127.0.0.1 holding the template's stateful resources; a context manager."""

    def __init__(self, app: Any, *, invoke: Invoke | None = None, seed: Path | None = EVENT_DATA, visibility_s: int | None = 2) -> None:
        self.app = app
        self.invoke = invoke or app_invoker(app)
        self.seed = seed
        self.visibility_s = visibility_s
        self.sources: EventSources | None = None
        self._server = None
        self._saved: dict[str, str | None] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "LocalCloud":
        from moto.server import ThreadedMotoServer

        port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        for name in ENDPOINT_VARIABLES:
            self._saved[name] = os.environ.get(name)
            os.environ[name] = self.endpoint
        self.sources = EventSources.from_template(self.app, invoke=self.invoke, visibility_s=self.visibility_s)
        if self.seed and self.seed.is_dir():
            self.upload(self.seed)
        return self

    def deliver_in_background(self, interval_s: float = 0.2) -> None:
        """Poll the event sources on a daemon thread until the context ends (``start-api --moto``)."""
        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.sources.poll_once()
                except Exception as error:  # a function error is the function's; keep delivering
                    print(f"event delivery: {error}", file=sys.stderr)

        self._thread = threading.Thread(target=loop, name="modelfn-event-sources", daemon=True)
        self._thread.start()

    def stop_delivery(self) -> None:
        """Deliver nothing more (the poll in progress finishes); ``__exit__`` waits for it."""
        self._stop.set()

    def __exit__(self, *exc: object) -> None:
        self.stop_delivery()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self._server is not None:
            self._server.stop()

    @property
    def data_bucket(self) -> str | None:
        assert self.sources is not None
        return self.sources.inboxes[0].bucket if self.sources.inboxes else None

    def upload(self, folder: Path) -> list[str]:
        """Copy ``folder``'s files into the data bucket under their relative paths (``inbox/…``, ``requests/…``)."""
        bucket = self.data_bucket
        if bucket is None:
            return []
        keys = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            key = path.relative_to(folder).as_posix()
            self.sources.s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            keys.append(key)
        return keys

    def results(self) -> dict[str, bytes]:
        """Every object under ``outbox/`` and ``errors/`` of the data bucket, by key."""
        bucket = self.data_bucket
        found: dict[str, bytes] = {}
        if bucket is None:
            return found
        s3 = self.sources.s3
        for prefix in ("outbox/", "errors/"):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    found[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return found
