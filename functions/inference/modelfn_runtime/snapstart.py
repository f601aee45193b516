"""SnapStart runtime hooks: the model is loaded and warm in the snapshot, and still right for the sandbox after restore.

With ``SnapStart: ApplyOn: PublishedVersions`` (template.yaml, Zip model functions) Lambda runs the init phase
(imports, model download and ``ModelSession.load``) once per published version and snapshots it; cold starts
then restore that snapshot instead of initializing. ``register`` adds two hooks through the
``snapshot-restore-py`` package that the python3.12 runtime ships (and awslambdaric runs):

* before the snapshot, ``warm`` runs one inference on zeros shaped like the card's inputs, so ONNX Runtime's
  kernels, arenas and thread pool are already set up in the snapshot and the first request after restore
  is as fast as a warm one;
* after restore, ``recheck`` compares the provider and intra-op thread count with what this sandbox really
  offers (``providers.available_vcpus``); when they differ it reopens the session from ``source`` with the right
  sizing, so a snapshot never runs with a thread pool sized for another machine.

Outside a SnapStart-enabled function the hooks are registered but never called.

Example:
    >>> register(service)                                   # doctest: +SKIP  (handler.py does this at init)
"""

from __future__ import annotations

import os
import time
from typing import Any

from .environment import EXECUTION_PROVIDER
from .observability import logger


def register(service: Any) -> bool:
    """Register ``warm`` and ``recheck`` for ``service``'s model; False when there is no model or no hook library."""
    if service.model is None:
        return False
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:  # not a SnapStart-capable runtime (the python3.12 Lambda runtime ships it)
        return False
    register_before_snapshot(warm, service)
    register_after_restore(recheck, service)
    return True


def warm(service: Any) -> None:
    """One inference on zeros of every input's shape (dynamic dimensions as 1) before the snapshot."""
    import numpy as np

    from .tensors import numpy_dtype

    model = service.model
    started = time.perf_counter()
    feeds = {
        spec.name: np.zeros([1 if dim < 0 else dim for dim in spec.shape], numpy_dtype(spec.datatype))
        for spec in model.card.inputs
    }
    model.run(feeds)
    logger.info("warmed before snapshot", warm_ms=round((time.perf_counter() - started) * 1000, 1))


def recheck(service: Any) -> None:
    """After restore: reopen the session when its provider or thread count does not fit this sandbox."""
    from . import providers
    from .session import ModelSession

    model = service.model
    vcpus = providers.available_vcpus()
    wanted_provider = providers.requested_providers(_preference())[0]
    if model.threads == vcpus and model.provider == wanted_provider:
        logger.info("restored from snapshot", provider=model.provider, threads=model.threads)
        return
    if model.source is None:
        logger.warning("restored with a session sized for another sandbox and no source to reopen",
                       threads=model.threads, vcpus=vcpus)
        return
    started = time.perf_counter()
    # the artifact was verified against its card at init, in the snapshot: no second hash of it after restore
    service.model = ModelSession.load(model.source, preference=_preference(), threads=vcpus, sha256=model.card.artifact.sha256)
    logger.info("session reopened after restore", old_threads=model.threads, threads=service.model.threads,
                old_provider=model.provider, provider=service.model.provider,
                reopen_ms=round((time.perf_counter() - started) * 1000, 1))


def _preference() -> str:
    return os.environ.get(EXECUTION_PROVIDER, "auto")
