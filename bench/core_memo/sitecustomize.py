"""Put this folder first on PYTHONPATH (with BENCH_CORE_MEMO=1) to run the hooks with a core that costs nothing:
hooks/pipeline.py's call of the pure core answers from a memo of its first answer per (parent name, has a status).
Everything around the core is unchanged (reading and checking the request, the Flink REST calls, the response,
metrics, the log line). Only for `make bench`'s ceiling rows: the most any speed-up of the core could give over
HTTP. Never correct for real use: a memoised answer ignores what changed."""
import os

if os.environ.get("BENCH_CORE_MEMO") == "1":
    import hooks.pipeline as _pipeline

    _core = _pipeline.sync_deployment
    _memo: dict = {}

    def _memoised(parent, children, observation, now, settings, **kwargs):
        key = ((parent.get("metadata") or {}).get("name"), bool(parent.get("status")))
        if key not in _memo:
            _memo[key] = _core(parent, children, observation, now, settings, **kwargs)
        return _memo[key]

    _pipeline.sync_deployment = _memoised
