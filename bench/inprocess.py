"""In-process timings of the pure core (no HTTP, no JSON on the timed path unless said).

Rounds interleave the cases (first sync, steady resync, the JSON floor, the app's decode+sync+encode), so a
noisy neighbour slows all of them alike and the ratios hold."""
from __future__ import annotations

import json
import time
from typing import Any

import orjson

from sync.deployment import sync_deployment

from .workload import SETTINGS, SteadyTemplate, first_request


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[index]


def summary_us(samples_ns: list[int]) -> dict[str, float]:
    values = sorted(s / 1000 for s in samples_ns)
    return {"n": len(values), "p50_us": percentile(values, 50), "p99_us": percentile(values, 99),
            "mean_us": sum(values) / len(values)}


def run(template: SteadyTemplate, iterations: int = 4000, warmup: int = 400, rounds: int = 8) -> dict[str, Any]:
    first_body = first_request(1)
    first_text = json.dumps(first_body, separators=(",", ":")).encode()
    steady_text = template.text_for(1).encode()
    steady_body = orjson.loads(steady_text)
    observation = template.observation(1)
    now = template.now_ms + 60_000

    def first() -> Any:
        result = sync_deployment(first_body["parent"], first_body["children"], None, now, SETTINGS)
        return result.response(False)

    def steady() -> Any:
        result = sync_deployment(steady_body["parent"], steady_body["children"], observation, now, SETTINGS)
        return result.response(False)

    # The floor: the least any hook must do with this payload — decode the request it was sent and encode
    # the answer it gives (here with orjson, the fastest JSON codec for Python).
    first_answer = first()
    steady_answer = steady()

    def floor_first() -> Any:
        orjson.loads(first_text)
        return orjson.dumps(first_answer)

    def floor_steady() -> Any:
        orjson.loads(steady_text)
        return orjson.dumps(steady_answer)

    def app_steady() -> Any:
        # What the hook does around the core: stdlib json decode, the sync, the sorted compact encode.
        body = json.loads(steady_text)
        result = sync_deployment(body["parent"], body["children"], observation, now, SETTINGS)
        return json.dumps(result.response(False), separators=(",", ":"), sort_keys=True)

    cases = {"first": first, "steady": steady, "floor_first": floor_first, "floor_steady": floor_steady,
             "app_steady": app_steady}
    # The core must not change its input: every call answers the same.
    reference = {name: json.dumps(fn() if name in ("first", "steady") else None, sort_keys=True)
                 for name, fn in cases.items()}
    samples: dict[str, list[int]] = {name: [] for name in cases}
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    per_round = max(1, iterations // rounds)
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, fn in cases.items():
            bucket = samples[name]
            for _ in range(per_round):
                start = clock()
                fn()
                bucket.append(clock() - start)
    for name in ("first", "steady"):
        again = json.dumps(cases[name](), sort_keys=True)
        if again != reference[name]:
            raise AssertionError(f"in-process {name} sync is not repeatable: the core changed its input")
    result = {name: summary_us(values) for name, values in samples.items()}
    result["payload_bytes"] = {"first": len(first_text), "steady": len(steady_text),
                               "steady_response": len(json.dumps(steady(), separators=(",", ":")))}
    return result
