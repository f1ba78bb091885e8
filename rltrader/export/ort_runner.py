"""Run exported graphs in another Python's ONNX Runtime: the script that MetaTrader 5's runtime version runs.

MetaTrader 5 embeds ONNX Runtime 1.14, whose wheels exist for CPython 3.8 and 3.10 only, while rltrader
runs on 3.11. So the checks that need 1.14.1 start this file with a Python 3.10 that has
``onnxruntime==1.14.1`` and ``numpy<2`` (:mod:`rltrader.export.runtime114` builds that environment). It
imports nothing of rltrader and keeps to Python 3.8's syntax.

Two commands, each printing one JSON object:

``probe DIR``
    Create a session (no graph optimizations) for every ``DIR/*.onnx``, each in a process of its own;
    report ``"ok"``, the runtime's error, or that it crashed, per file. ``scripts/probe_ort114_kernels.py``
    builds one-node graphs and reads which (operator, type) pairs the runtime has a kernel for.

``run GRAPH FEEDS OUT``
    Step a bundle's graph over bars as the Expert Advisor does: ``FEEDS`` (``.npz``) holds ``bar``
    ``(N, 7)``, ``account`` ``(N, 2)``, ``deciding`` ``(N,)`` and ``state`` ``(1, S)``; the ``state_out``
    of each bar is the next bar's ``state``, and the ``lstm_out`` (recurrent graphs) is carried once
    ``deciding``. ``OUT`` (``.npz``) gets ``action``, ``probabilities``, ``features`` and ``seconds``
    (``session.run``'s time per bar).

``features GRAPH FEEDS OUT``
    Step a features-only graph (:func:`rltrader.export.graph.feature_graph`) over ``bar`` ``(N, 7)`` from
    ``state``; ``OUT`` gets the raw ``features`` ``(N, F)``.

The stepping loops (:func:`step_bundle_graph`, :func:`step_feature_graph`) are the ones rltrader itself uses
in its own Python's runtime, so both runtimes are driven bar by bar the same way.
"""

import glob
import json
import os
import sys
import time


def session_of(path_or_bytes, optimize=True):
    """One-thread CPU session (graph optimizations off for a probe: the kernel lookup is the finding)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if not optimize:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(path_or_bytes, options, providers=["CPUExecutionProvider"])


def probe_one(path):
    """Open one graph; the runtime's refusal is the finding."""
    try:
        session_of(path, optimize=False)
        return "ok"
    except Exception as error:  # noqa: BLE001
        return str(error).splitlines()[0][:400]


def probe(directory):
    """Each graph in a process of its own: 1.14.1 crashes (SIGSEGV) opening some one-node graphs (Relu on int64)."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    def one(path):
        done = subprocess.run([sys.executable, __file__, "probe-one", path], capture_output=True, text=True)
        if done.returncode != 0:
            return "crashed opening it (exit %d)" % done.returncode
        return json.loads(done.stdout)["outcome"]

    paths = sorted(glob.glob(os.path.join(directory, "*.onnx")))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip([os.path.basename(p) for p in paths], pool.map(one, paths)))


def step_bundle_graph(session, bars, accounts, deciding, state):
    """A bundle's graph over ``bars`` ``(N, 7)`` as the Expert Advisor runs it: ``state_out`` is the next bar's
    ``state``; ``lstm_out`` is carried once ``deciding`` (zero before the first decision). Returns the arrays
    ``action``, ``probabilities``, ``features`` and ``seconds`` (``session.run``'s time per bar)."""
    import numpy as np

    names = [value.name for value in session.get_inputs()]
    lstm = None
    if "lstm" in names:
        shape = [value.shape for value in session.get_inputs() if value.name == "lstm"][0]
        lstm = np.zeros(shape, dtype=np.float32)
    n = bars.shape[0]
    actions = np.full(n, -1, dtype=np.int64)
    probabilities = np.full((n, 3), np.nan, dtype=np.float32)
    features = None
    seconds = np.zeros(n)
    for row in range(n):
        inputs = {"bar": bars[row : row + 1], "account": accounts[row : row + 1], "state": state}
        if lstm is not None:
            inputs["lstm"] = lstm
        began = time.perf_counter()
        outputs = session.run(None, inputs)
        seconds[row] = time.perf_counter() - began
        actions[row] = int(outputs[0][0])
        probabilities[row] = outputs[1][0]
        if features is None:
            features = np.full((n, outputs[2].shape[1]), np.nan, dtype=np.float32)
        features[row] = outputs[2][0]
        state = outputs[3]
        if lstm is not None and deciding[row]:
            lstm = outputs[4]
    return {"action": actions, "probabilities": probabilities, "features": features, "seconds": seconds}


def step_feature_graph(session, bars, state):
    """A features-only graph over ``bars`` ``(N, 7)`` from ``state``: the raw features ``(N, F)``."""
    import numpy as np

    rows = []
    for row in range(bars.shape[0]):
        values, state = session.run(None, {"bar": bars[row : row + 1], "state": state})
        rows.append(values[0])
    return np.array(rows)


def run(graph, feeds_path, out_path):
    import numpy as np

    feeds = np.load(feeds_path)
    outputs = step_bundle_graph(session_of(graph, optimize=True), feeds["bar"], feeds["account"], feeds["deciding"],
                                feeds["state"])
    np.savez(out_path, **outputs)
    return {"bars": int(feeds["bar"].shape[0])}


def features(graph, feeds_path, out_path):
    """A features-only graph (``bar``, ``state`` in; ``features``, ``state_out`` out) stepped over every bar."""
    import numpy as np

    feeds = np.load(feeds_path)
    np.savez(out_path, features=step_feature_graph(session_of(graph, optimize=True), feeds["bar"], feeds["state"]))
    return {"bars": int(feeds["bar"].shape[0])}


def main(argv):
    import onnxruntime

    if len(argv) == 2 and argv[0] == "probe-one":
        result = {"outcome": probe_one(argv[1])}
    elif len(argv) == 2 and argv[0] == "probe":
        result = {"onnxruntime": onnxruntime.__version__, "python": sys.version.split()[0], "probe": probe(argv[1])}
    elif len(argv) == 4 and argv[0] in ("run", "features"):
        command = run if argv[0] == "run" else features
        result = {"onnxruntime": onnxruntime.__version__, "python": sys.version.split()[0], **command(*argv[1:])}
    else:
        print("usage: ort_runner.py probe DIR | run GRAPH FEEDS OUT | features GRAPH FEEDS OUT", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
