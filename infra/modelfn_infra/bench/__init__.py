"""``modelfn bench`` and ``modelfn tune``: what a request costs in time, memory and money.

* :mod:`.models` — the benchmark models (digits, a small CNN, MobileNetV2, ResNet50; fp32 and int8), built
  informative and exported once into ``.modelfn/bench/`` (:mod:`.cache`);
* :mod:`.child` — the measuring processes: the real ``app.lambda_handler`` on API Gateway REST events, bare
  ONNX Runtime and a TensorFlow SavedModel handler (:mod:`.tf_handler`), each in its own fresh interpreter;
* :mod:`.measure` (in process) and :mod:`.local` (through the local Lambda runtime) drive them;
* :mod:`.report` and :mod:`.plots` write BENCHMARKS.md and its PNGs; :mod:`.tune` turns latency per thread count
  into cost per 1M requests at each Lambda memory size and a recommended ``memory_mb``.

Nothing here is imported by a deployed function; the handler process that is measured imports only
the function's own code (TensorFlow never enters it).

Example:
    >>> from modelfn_infra.bench.cli import main      # doctest: +SKIP
    >>> main(["bench", "--quick", "--json", "bench.json"])   # doctest: +SKIP
"""
