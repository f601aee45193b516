"""Every comparison in the report, as a ratio of two figures measured in the same run.

The targets of issue 14's fast path are rows here, so one ``modelfn bench`` run says whether they hold:

* item 1: a ~150,000-element OIP JSON (and TF Serving JSON) infer through the handler in at most 0.5x the time
  stdlib ``json.loads`` needs for the same body; binary-extension overhead (handler minus ``session.run``) at
  most 2x ``base64.b64decode`` of the body;
* item 3: handler overhead over bare ``session.run`` at 1 sample at most 50 µs (p50), for models whose one sample
  is small (at most ``SMALL_REQUEST`` elements: a 224x224x3 image is a large request, item 1's);
* item 4: cold start at most 1.25x bare onnxruntime's.

The rest compare against TensorFlow and between variants, with no target.

Example:
    >>> rows = ratios(results)                                         # doctest: +SKIP
    >>> [r["value"] for r in rows if r["id"] == "cold-vs-bare"]        # doctest: +SKIP
    [1.41]
"""

from __future__ import annotations

from typing import Any

from .models import INT8_SUFFIX

SMALL_REQUEST = 4096
"""Item 3 is about small requests (the 64-element digits sample): it is not reported where one row is larger."""


def _row(id_: str, model: str, what: str, value: float | None, *, target: float | None = None, item: int | None = None,
         unit: str = "x", detail: str = "") -> dict[str, Any]:
    met = None if target is None or value is None else value <= target
    return {"id": id_, "model": model, "what": what, "value": None if value is None else round(value, 3), "unit": unit,
            "target": target, "met": met, "item": item, "detail": detail}


def _p50(figures: dict[str, Any] | None, config: str, call: str = "handler") -> float | None:
    try:
        return figures["configs"][config][call]["p50"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None


def _large_config(model: dict[str, Any], codec: str) -> str | None:
    """The ~150k-element config of ``codec``: a probe, or batch 1 where one row is that large."""
    labels = {c["label"]: c for c in model["configs"]}
    if f"{codec} 150k" in labels:
        return f"{codec} 150k"
    single = labels.get(f"{codec} b1")
    return f"{codec} b1" if single and single["elements"] >= 150_000 else None


def fast_path_rows(name: str, model: dict[str, Any]) -> list[dict[str, Any]]:
    """Items 1, 3 and 4 of issue 14 for one model."""
    handler = model["warm"]["handler"]
    rows = []
    for codec, id_ in (("json", "json-150k"), ("tfserving", "tfserving-150k")):
        label = _large_config(model, codec)
        if label:
            value = _p50(handler, label) / _p50(handler, label, "decode")
            detail = f"{label}: handler p50 {_p50(handler, label):.2f} ms, json.loads {_p50(handler, label, 'decode'):.2f} ms"
            what = f"{'OIP' if codec == 'json' else 'TF Serving'} JSON infer, ~150k elements: handler ÷ json.loads(body)"
            rows.append(_row(id_, name, what, value, target=0.5, item=1, detail=detail))
    label = _large_config(model, "binary")
    if label:
        overhead = _p50(handler, label) - _p50(handler, label, "bare")
        decode = _p50(handler, label, "decode")
        rows.append(_row("binary-150k", name, "binary extension, ~150k elements: (handler − session.run) ÷ b64decode(body)",
                         overhead / decode, target=2.0, item=1,
                         detail=f"{label}: overhead {overhead:.3f} ms, b64decode {decode:.3f} ms"))
    handler_p50, bare_p50 = _p50(handler, "json b1"), _p50(handler, "json b1", "bare")
    single = next((c for c in model["configs"] if c["label"] == "json b1"), None)
    if handler_p50 is not None and bare_p50 is not None and single and single["elements"] <= SMALL_REQUEST:
        rows.append(_row("overhead-1", name, "handler overhead at 1 sample (REST JSON): handler − session.run, p50",
                         (handler_p50 - bare_p50) * 1000, target=50.0, item=3, unit="µs",
                         detail=f"handler {handler_p50 * 1000:.0f} µs, session.run {bare_p50 * 1000:.0f} µs "
                                f"({handler_p50 / bare_p50:.1f}x)"))
    cold = model.get("cold") or {}
    if "handler" in cold and "bare" in cold:
        handler_ms, bare_ms = cold["handler"]["median"]["total"], cold["bare"]["median"]["total"]
        rows.append(_row("cold-vs-bare", name, "cold start to first response: handler ÷ bare onnxruntime", handler_ms / bare_ms,
                         target=1.25, item=4, detail=f"{handler_ms:.0f} ms vs {bare_ms:.0f} ms"))
    return rows


def tensorflow_rows(name: str, model: dict[str, Any]) -> list[dict[str, Any]]:
    """modelfn against the TensorFlow SavedModel handler on the same events."""
    rows, cold = [], model.get("cold") or {}
    if "tf" in cold and "handler" in cold:
        tf_ms, handler_ms = cold["tf"]["median"]["total"], cold["handler"]["median"]["total"]
        rows.append(_row("tf-cold", name, "cold start: TensorFlow handler ÷ modelfn handler", tf_ms / handler_ms,
                         detail=f"{tf_ms:.0f} ms vs {handler_ms:.0f} ms"))
        tf_mb, handler_mb = cold["tf"]["median"]["peak_rss_mb"], cold["handler"]["median"]["peak_rss_mb"]
        rows.append(_row("tf-rss", name, "peak RSS after the first request: TensorFlow ÷ modelfn", tf_mb / handler_mb,
                         detail=f"{tf_mb:.0f} MB vs {handler_mb:.0f} MB"))
    tf = model["warm"].get("tf")
    for config in ("json b1", "json b8", "json b64"):
        tf_p50, handler_p50 = _p50(tf, config), _p50(model["warm"]["handler"], config)
        if tf_p50 is not None and handler_p50 is not None:
            rows.append(_row("tf-warm", name, f"warm p50, {config}: TensorFlow handler ÷ modelfn handler", tf_p50 / handler_p50,
                             detail=f"{tf_p50:.2f} ms vs {handler_p50:.2f} ms"))
    return rows


def variant_rows(name: str, model: dict[str, Any], models: dict[str, Any]) -> list[dict[str, Any]]:
    """Binary against JSON, int8 against fp32, local runtime against in process, 2 clients against 1."""
    rows, handler = [], model["warm"]["handler"]
    for rows_label in ("b1", "b64"):
        binary, json_ = _p50(handler, f"binary {rows_label}"), _p50(handler, f"json {rows_label}")
        if binary is not None and json_ is not None:
            rows.append(_row("binary-vs-json", name, f"warm p50, {rows_label}: binary ÷ JSON", binary / json_,
                             detail=f"{binary:.3f} ms vs {json_:.3f} ms"))
    fp32 = models.get(name.removesuffix(INT8_SUFFIX)) if name.endswith(INT8_SUFFIX) else None
    if fp32:
        for config in ("json b1", "binary b64", "binary b1"):
            q, f = _p50(handler, config, "bare"), _p50(fp32["warm"]["handler"], config, "bare")
            if q is not None and f is not None:
                rows.append(_row("int8-vs-fp32", name, f"session.run p50, {config}: int8 ÷ fp32", q / f,
                                 detail=f"{q:.3f} ms vs {f:.3f} ms"))
        rows.append(_row("int8-size", name, "model size: int8 ÷ fp32", model["about"]["model_bytes"] / fp32["about"]["model_bytes"]))
    local = model.get("local") or {}
    local_p50 = (local.get("latency") or {}).get("json b1", {}).get("p50")
    if local_p50 and _p50(handler, "json b1"):
        rows.append(_row("local-vs-inprocess", name, "p50 json b1: local API (RIE, HTTP) ÷ handler in process",
                         local_p50 / _p50(handler, "json b1"), detail=f"{local_p50:.2f} ms vs {_p50(handler, 'json b1'):.2f} ms"))
    throughput = local.get("throughput") or {}
    if throughput.get("1", {}).get("throughput_rps") and throughput.get("2", {}).get("throughput_rps"):
        one, two = throughput["1"]["throughput_rps"], throughput["2"]["throughput_rps"]
        rows.append(_row("clients-2-vs-1", name, "local API throughput: 2 clients ÷ 1 client", two / one,
                         detail=f"{two:.1f} vs {one:.1f} requests/s"))
    return rows


def ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ratio row of a bench run, targets first."""
    models = results["models"]
    rows: list[dict[str, Any]] = []
    for name, model in models.items():
        rows += fast_path_rows(name, model)
    for name, model in models.items():
        rows += tensorflow_rows(name, model) + variant_rows(name, model, models)
    return rows
