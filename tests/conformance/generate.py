#!/usr/bin/env python3
"""Generate the conformance fixtures: run pipeline cases through the original streamz 0.6.6
and write what it outputs to tests/conformance/fixtures/*.json.

    python3 tests/conformance/generate.py

Installs streamz==0.6.6 into tests/conformance/.venv (git-ignored) on first use and re-runs
itself there. The Rust test `tests/tests/conformance.rs` runs the same cases through this
library; CI uses the committed fixtures and needs no Python.

A case:

    {"name": ..., "pipeline": {"sources": [...], "join": null | {...}, "stages": [[op, params], ...]},
     "input": [[source, value] | ["close", source] | ["flush"]], "expected": [...], "errors": [...],
     "difference": null | "<deliberate difference>", "expected_here": [...] (with a difference)}

`expected` is the original's sink output; `errors` the indices of input events whose `emit`
raised in the original. Functions are named (see FUNCS); the Rust test has the same registry.
Input lists become Python tuples (the original's `starmap` requires tuples).
"""

import itertools
import json
import os
import random
import subprocess
import sys
import venv

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(HERE, ".venv")
FIXTURES = os.path.join(HERE, "fixtures")


def ensure_streamz():
    """Re-run inside a venv that has the original installed."""
    try:
        import streamz  # noqa: F401

        if streamz.__version__ in ("0.6.5", "0.6.6"):  # the 0.6.6 wheel says 0.6.5 in places
            return
    except ImportError:
        pass
    python = os.path.join(VENV, "bin", "python")
    if os.environ.get("STREAMZ_CONFORMANCE_VENV"):
        sys.exit("streamz is not importable in the conformance venv")
    if not os.path.exists(python):
        venv.create(VENV, with_pip=True)
        subprocess.check_call([python, "-m", "pip", "install", "-q", "streamz==0.6.6"])
    env = dict(os.environ, STREAMZ_CONFORMANCE_VENV="1")
    os.execve(python, [python, os.path.abspath(__file__)] + sys.argv[1:], env)


# The functions cases refer to by name. The Rust test defines the same ones.
FUNCS = {
    "inc": lambda x: x + 1,
    "double": lambda x: x * 2,
    "neg": lambda x: -x,
    "square": lambda x: x * x,
    "mod2": lambda x: x % 2,
    "mod3": lambda x: x % 3,
    "is_even": lambda x: x % 2 == 0,
    "gt2": lambda x: x > 2,
    "len": len,
    "first": lambda x: x[0],
    "recip": lambda x: 100 // x,  # raises on 0
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "maximum": lambda a, b: max(a, b),
    "sum_prod": lambda a, x: (a + x, a * x),
    "sum_sum": lambda a, x: (a + x, a + x),
    "sum_neg": lambda a, x: (a + x, -x),
    # a running mean: the state is (sum, count), the output their quotient
    "mean": lambda a, x: ((a[0] + x, a[1] + 1), (a[0] + x) / (a[1] + 1)),
}


def tuples(value):
    if isinstance(value, list):
        return tuple(tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: tuples(v) for k, v in value.items()}
    return value


def jsonable(value):
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def apply_stage(stream, op, p):
    from streamz import Stream  # noqa: F401

    if op == "map":
        return stream.map(FUNCS[p["f"]])
    if op == "filter":
        return stream.filter(FUNCS[p["f"]] if p.get("f") else None)
    if op == "remove":
        return stream.remove(FUNCS[p["f"]])
    if op == "accumulate":
        kwargs = {}
        if "start" in p:
            kwargs["start"] = tuples(p["start"])
        if p.get("returns_state"):
            kwargs["returns_state"] = True
        if p.get("with_state"):
            kwargs["with_state"] = True
        return stream.accumulate(FUNCS[p["f"]], **kwargs)
    if op == "starmap":
        return stream.starmap(FUNCS[p["f"]])
    if op == "pluck":
        return stream.pluck(p["key"])
    if op == "flatten":
        return stream.flatten()
    if op == "unique":
        kwargs = {"maxsize": p.get("maxsize")}
        if p.get("key"):
            kwargs["key"] = FUNCS[p["key"]]
        return stream.unique(**kwargs)
    if op == "slice":
        return stream.slice(p.get("start"), p.get("stop"), p.get("step"))
    if op == "sliding_window":
        return stream.sliding_window(p["n"], return_partial=p.get("return_partial", True))
    if op == "partition":
        key = p.get("key")
        return stream.partition(p["n"], key=FUNCS[key] if isinstance(key, str) else key)
    if op == "partition_unique":
        key = p.get("key")
        key = FUNCS[key] if key in FUNCS else (key if key is not None else (lambda x: x))
        return stream.partition_unique(p["n"], key=key, keep=p.get("keep", "first"))
    if op == "collect":
        return stream.collect()
    if op == "frequencies":
        return stream.frequencies()
    raise ValueError(f"unknown stage {op}")


def run_original(case):
    """The original's output for a case, and the indices of events that raised."""
    from streamz import Stream
    from streamz.core import combine_latest, union, zip, zip_latest

    pipeline = case["pipeline"]
    sources = {name: Stream() for name in pipeline["sources"]}
    join = pipeline.get("join")
    if join is None:
        node = sources[pipeline["sources"][0]]
    else:
        inputs = [sources[i["stream"]] if "stream" in i else tuples(i["value"]) for i in join["inputs"]]
        if join["op"] == "zip":
            node = zip(*inputs, maxsize=join.get("maxsize", 10))
        elif join["op"] == "union":
            node = union(*inputs)
        elif join["op"] == "combine_latest":
            emit_on = join.get("emit_on")
            node = combine_latest(*inputs, emit_on=emit_on)
        elif join["op"] == "zip_latest":
            node = zip_latest(*inputs)
        else:
            raise ValueError(join["op"])
    collectors = []
    for op, params in pipeline["stages"]:
        node = apply_stage(node, op, params)
        if op == "collect":
            collectors.append(node)
    out = node.sink_to_list()
    errors = []
    for i, event in enumerate(case["input"]):
        if event[0] == "close":
            continue  # the original has no end of stream
        if event[0] == "flush":
            for c in collectors:
                c.flush()
            continue
        try:
            sources[event[0]].emit(tuples(event[1]))
        except Exception:  # noqa: BLE001 - any failure of the original counts
            errors.append(i)
    return jsonable(list(out)), errors


def case(name, stages, values, sources=("s",), join=None, events=None, difference=None, expected_here=None):
    input_events = events if events is not None else [["s", v] for v in values]
    c = {
        "name": name,
        "pipeline": {"sources": list(sources), "join": join, "stages": [list(s) for s in stages]},
        "input": input_events,
    }
    c["expected"], c["errors"] = run_original(c)
    c["difference"] = difference
    if difference is not None:
        c["expected_here"] = expected_here
    return c


def elementwise():
    r = range(10)
    cases = [
        case("map inc", [("map", {"f": "inc"})], r),
        case("map on empty input", [("map", {"f": "inc"})], []),
        case("map double then square", [("map", {"f": "double"}), ("map", {"f": "square"})], r),
        case("map raises on zero", [("map", {"f": "recip"})], [5, 0, 10, 0, 25]),
        case("filter even", [("filter", {"f": "is_even"})], r),
        case("filter truthiness", [("filter", {})], [i % 3 for i in range(10)]),
        case("filter truthiness of lists", [("filter", {})], [0, 1, [], [0], 2]),
        case("remove even", [("remove", {"f": "is_even"})], r),
        case("filter gt2 then map neg", [("filter", {"f": "gt2"}), ("map", {"f": "neg"})], r),
        case("starmap add", [("starmap", {"f": "add"})], [[1, 10], [2, 20], [3, 30]]),
        case("starmap mul", [("starmap", {"f": "mul"})], [[2, 3], [4, 5]]),
        case("pluck index", [("pluck", {"key": 1})], [[1, 2, 3], [4, 5, 6, 7, 8, 9], [1]]),
        case("pluck index list", [("pluck", {"key": [0, 2]})], [[1, 2, 3], [4, 5, 6, 7, 8, 9], [1]]),
        case("pluck key", [("pluck", {"key": "x"})], [{"x": 1, "y": 2}, {"x": 3}, {"y": 4}]),
        case("pluck key list", [("pluck", {"key": ["x", "y"]})], [{"x": 1, "y": 2}, {"x": 3, "y": 4}]),
        case("pluck nested", [("pluck", {"key": "a"}), ("pluck", {"key": 0})], [{"a": [5, 6]}, {"a": [7]}]),
        case("flatten", [("flatten", {})], [[1, 2, 3], [4, 5], [6, 7, 8]]),
        case("flatten with empty", [("flatten", {})], [[1, 2], [], [3, 4]]),
        case("flatten one level", [("flatten", {})], [[[1], [2, 3]], [[4]]]),
        case("flatten then map", [("flatten", {}), ("map", {"f": "inc"})], [[1, 2], [3]]),
        case("map len", [("map", {"f": "len"})], ["a", "bb", "", "dddd"]),
    ]
    return cases


def accumulate():
    r1 = list(range(1, 6))
    return [
        case("accumulate add", [("accumulate", {"f": "add"})], range(5)),
        case("accumulate add start 0", [("accumulate", {"f": "add", "start": 0})], r1),
        case("accumulate add start 100", [("accumulate", {"f": "add", "start": 100})], r1),
        case("accumulate maximum", [("accumulate", {"f": "maximum"})], [3, 1, 4, 1, 5, 9, 2, 6]),
        case("accumulate mul start 1", [("accumulate", {"f": "mul", "start": 1})], r1),
        case("accumulate on empty input", [("accumulate", {"f": "add"})], []),
        case("accumulate one element", [("accumulate", {"f": "add"})], [42]),
        case("accumulate returns_state start 0",
             [("accumulate", {"f": "sum_prod", "start": 0, "returns_state": True})], [1, 2, 3]),
        case("accumulate returns_state running mean start (0, 0)",
             [("accumulate", {"f": "mean", "start": [0, 0], "returns_state": True})], [2, 4, 9, 1]),
        case("accumulate returns_state no start",
             [("accumulate", {"f": "sum_neg", "returns_state": True})], [1, 2, 3]),
        case("accumulate returns_state scan", [("accumulate", {"f": "sum_sum", "returns_state": True})], [0, 1, 2]),
        case("accumulate with_state", [("accumulate", {"f": "add", "with_state": True})], [1, 2, 3, 4]),
        case("accumulate with_state start 100",
             [("accumulate", {"f": "add", "start": 100, "with_state": True})], [1, 2, 3]),
        case("accumulate with_state returns_state start 0",
             [("accumulate", {"f": "sum_prod", "start": 0, "returns_state": True, "with_state": True})], [1, 2, 3]),
        case("accumulate with_state returns_state no start",
             [("accumulate", {"f": "sum_prod", "returns_state": True, "with_state": True})], [1, 2, 3]),
        case("map then accumulate", [("map", {"f": "inc"}), ("accumulate", {"f": "add"})], range(4)),
        case("accumulate then filter even", [("accumulate", {"f": "add", "start": 0}), ("filter", {"f": "is_even"})], range(10)),
        case("frequencies", [("frequencies", {})], ["a", "b", "c", "a"]),
        case("frequencies of words", [("frequencies", {})], ["x", "y", "x", "x", "z", "y"]),
    ]


def select():
    cases = [
        case("unique", [("unique", {})], [1, 2, 1]),
        case("unique on empty input", [("unique", {})], []),
        case("unique key maxsize 1", [("unique", {"key": "mod2", "maxsize": 1})], [1, 2, 4, 6, 3]),
        case("unique maxsize 1", [("unique", {"maxsize": 1})], [1, 1, 2, 2, 1, 3, 3]),
        case("unique maxsize 2 history",
             [("unique", {"maxsize": 2})], [1, 2, 1, 2, 1, 2, 3, 2, 1, 2, 3, 2]),
        case("unique maxsize 3", [("unique", {"maxsize": 3})], [1, 2, 3, 4, 1, 2, 3, 4, 5, 1]),
        case("unique key mod3", [("unique", {"key": "mod3"})], range(10)),
        case("unique of lists", [("unique", {})], [[1, 2], [1, 2], [2, 1]]),
    ]
    # slice: where the original and itertools.islice agree, and where they differ on purpose
    values = list(range(8))
    for start, stop, step in [
        (None, None, None), (1, None, None), (None, 4, None), (None, 4, 2), (3, 1, None),
        (2, 6, None), (0, 3, 1), (None, None, 2), (1, None, 2), (2, None, 3), (3, 7, 2), (0, 0, None),
        (5, None, None), (1, 2, None),
    ]:
        params = {"start": start, "stop": stop, "step": step}
        here = list(itertools.islice(values, start or 0, stop, step or 1))
        c = case(f"slice {start},{stop},{step}", [("slice", params)], values)
        if c["expected"] != here:
            c["difference"] = "slice follows itertools.islice"
            c["expected_here"] = here
        cases.append(c)
    return cases


def window():
    r = range(10)
    cases = []
    for n in [1, 2, 3, 5, 12]:
        for partial in [True, False]:
            cases.append(case(f"sliding_window {n} partial={partial}",
                              [("sliding_window", {"n": n, "return_partial": partial})], r))
    cases += [
        case("sliding_window on empty input", [("sliding_window", {"n": 2})], []),
        case("partition 2", [("partition", {"n": 2})], r),
        case("partition 3", [("partition", {"n": 3})], r),
        case("partition 1", [("partition", {"n": 1})], range(4)),
        case("partition key index 0", [("partition", {"n": 2, "key": 0})], [[i % 2, i] for i in range(4)]),
        case("partition key mod2", [("partition", {"n": 2, "key": "mod2"})], r),
        case("partition key mod3", [("partition", {"n": 2, "key": "mod3"})], r),
        case("partition_unique first", [("partition_unique", {"n": 3, "keep": "first"})], [1, 2, 1, 3, 1, 3, 3, 2]),
        case("partition_unique last", [("partition_unique", {"n": 3, "keep": "last"})], [1, 2, 1, 3, 1, 3, 3, 2]),
        case("partition_unique len last", [("partition_unique", {"n": 3, "key": "len", "keep": "last"})],
             ["f", "fo", "f", "foo", "f", "foo", "foo", "fo"]),
        case("partition_unique len first", [("partition_unique", {"n": 3, "key": "len", "keep": "first"})],
             ["f", "fo", "f", "foo", "f", "foo", "foo", "fo"]),
        case("partition_unique dict key first", [("partition_unique", {"n": 2, "key": "id", "keep": "first"})],
             [{"id": 0, "foo": "bar"}, {"id": 0, "foo": "baz"}, {"id": 1, "foo": "bat"}]),
        case("partition_unique dict key last", [("partition_unique", {"n": 2, "key": "id", "keep": "last"})],
             [{"id": 0, "foo": "bar"}, {"id": 0, "foo": "baz"}, {"id": 1, "foo": "bat"}]),
        case("collect and flush", [("collect", {})], None,
             events=[["s", 1], ["s", 2], ["flush"], ["flush"], ["s", 3], ["flush"]]),
        case("collect never flushed", [("collect", {})], None, events=[["s", 1], ["s", 2]]),
        case("collect then flatten", [("collect", {}), ("flatten", {})], None,
             events=[["s", 1], ["s", 2], ["flush"], ["s", 3], ["flush"]]),
    ]
    # end of stream: the original holds remainders forever; here they are emitted at close
    for n, values in [(3, list(range(10))), (4, list(range(6))), (2, [1])]:
        here = [list(values[i:i + n]) for i in range(0, len(values), n)]
        cases.append(case(f"partition {n} then close", [("partition", {"n": n})], None,
                          events=[["s", v] for v in values] + [["close", "s"]],
                          difference="partition emits its remainder at end of stream", expected_here=here))
    cases.append(case("partition_unique then close", [("partition_unique", {"n": 3})], None,
                      events=[["s", 1], ["s", 1], ["s", 2], ["close", "s"]],
                      difference="partition emits its remainder at end of stream", expected_here=[[1, 2]]))
    cases.append(case("collect then close", [("collect", {})], None,
                      events=[["s", 1], ["flush"], ["s", 2], ["s", 3], ["close", "s"]],
                      difference="collect emits what it holds at end of stream", expected_here=[[1], [2, 3]]))
    return cases


def join():
    ab = ["a", "b"]
    stream = lambda name: {"stream": name}  # noqa: E731
    cases = [
        case("zip", [], None, sources=ab, join={"op": "zip", "inputs": [stream("a"), stream("b")]},
             events=[["a", 1], ["b", "a"], ["a", 2], ["b", "b"]]),
        case("zip three", [], None, sources=["a", "b", "c"],
             join={"op": "zip", "inputs": [stream("a"), stream("b"), stream("c")]},
             events=[["a", 1], ["b", 2], ["c", 3]]),
        case("zip literal", [], None, sources=ab,
             join={"op": "zip", "inputs": [stream("a"), {"value": 123}, stream("b")]},
             events=[["a", 1], ["b", 2], ["a", 4], ["b", 5]]),
        case("zip literals at the ends", [], None, sources=ab,
             join={"op": "zip", "inputs": [stream("a"), {"value": "lit"}, stream("b"), {"value": 99}]},
             events=[["a", 1], ["b", 2]]),
        case("zip one side runs ahead", [], None, sources=ab,
             join={"op": "zip", "inputs": [stream("a"), stream("b")]},
             events=[["a", i] for i in range(5)] + [["b", i * 10] for i in range(3)]),
        case("zip then map", [("starmap", {"f": "add"})], None, sources=ab,
             join={"op": "zip", "inputs": [stream("a"), stream("b")]},
             events=[["a", 1], ["b", 10], ["a", 2], ["b", 20]]),
        case("union", [], None, sources=["a", "b", "c"],
             join={"op": "union", "inputs": [stream("a"), stream("b"), stream("c")]},
             events=[["a", 1], ["b", 2], ["a", 3], ["c", 4]]),
        case("union then accumulate", [("accumulate", {"f": "add"})], None, sources=ab,
             join={"op": "union", "inputs": [stream("a"), stream("b")]},
             events=[["a", 1], ["b", 2], ["a", 3]]),
        case("combine_latest", [], None, sources=ab,
             join={"op": "combine_latest", "inputs": [stream("a"), stream("b")]},
             events=[["a", 1], ["a", 2], ["b", "a"], ["a", 3], ["b", "b"]]),
        case("combine_latest emit_on both", [], None, sources=ab,
             join={"op": "combine_latest", "inputs": [stream("a"), stream("b")], "emit_on": [0, 1]},
             events=[["a", 1], ["a", 2], ["b", "a"], ["a", 3], ["b", "b"]]),
        case("combine_latest emit_on first", [], None, sources=ab,
             join={"op": "combine_latest", "inputs": [stream("a"), stream("b")], "emit_on": 0},
             events=[["a", 1], ["b", "a"], ["a", 2], ["a", 3], ["b", "b"], ["a", 4]]),
        case("combine_latest emit_on middle of three", [], None, sources=["a", "b", "c"],
             join={"op": "combine_latest", "inputs": [stream("a"), stream("b"), stream("c")], "emit_on": [1]},
             events=[["a", 1], ["b", 2], ["c", 3], ["b", 4], ["a", 5], ["c", 6], ["b", 7]]),
        case("zip_latest", [], None, sources=ab,
             join={"op": "zip_latest", "inputs": [stream("a"), stream("b")]},
             events=[["a", 1], ["a", 2], ["b", "a"], ["b", "b"], ["a", 3]]),
        case("zip_latest reverse", [], None, sources=ab,
             join={"op": "zip_latest", "inputs": [stream("a"), stream("b")]},
             events=[["b", "a"], ["a", 1], ["a", 2], ["a", 3], ["b", "b"], ["a", 4]]),
        case("zip_latest three", [], None, sources=["a", "b", "c"],
             join={"op": "zip_latest", "inputs": [stream("a"), stream("b"), stream("c")]},
             events=[["a", 1], ["b", "I"], ["b", "II"], ["a", 2], ["b", "III"], ["c", "a"], ["c", "b"], ["a", 3]]),
    ]
    return cases


# Stages for random compositions: none of them differs on purpose from the original.
def random_stage(rng):
    kind = rng.choice(["map", "map", "filter", "remove", "accumulate", "unique", "sliding_window",
                       "partition", "partition_key", "flatten_windows", "slice_head", "pluck_window"])
    if kind == "map":
        return [("map", {"f": rng.choice(["inc", "double", "neg", "square", "mod3"])})]
    if kind == "filter":
        return [("filter", {"f": rng.choice(["is_even", "gt2"])})]
    if kind == "remove":
        return [("remove", {"f": rng.choice(["is_even", "gt2"])})]
    if kind == "accumulate":
        params = {"f": rng.choice(["add", "maximum"])}
        if rng.random() < 0.5:
            params["start"] = rng.randint(-3, 3)
        return [("accumulate", params)]
    if kind == "unique":
        params = {"maxsize": rng.choice([None, 1, 2, 3])}
        if rng.random() < 0.4:
            params["key"] = rng.choice(["mod2", "mod3"])
        return [("unique", params)]
    if kind == "sliding_window":
        return [("sliding_window", {"n": rng.randint(1, 4), "return_partial": rng.random() < 0.5}),
                ("map", {"f": "len"})]
    if kind == "partition":
        return [("partition", {"n": rng.randint(1, 3)}), ("flatten", {})]
    if kind == "partition_key":
        return [("partition", {"n": 2, "key": rng.choice(["mod2", "mod3"])}), ("pluck", {"key": 0})]
    if kind == "flatten_windows":
        return [("sliding_window", {"n": 2, "return_partial": False}), ("flatten", {})]
    if kind == "slice_head":
        return [("slice", {"start": None, "stop": rng.randint(0, 12), "step": None})]
    return [("sliding_window", {"n": 3}), ("pluck", {"key": 0})]


def compositions():
    rng = random.Random(20261125)
    cases = []
    for i in range(60):
        stages = []
        for _ in range(rng.randint(2, 4)):
            stages += random_stage(rng)
        values = [rng.randint(-5, 20) for _ in range(rng.randint(0, 15))]
        c = case(f"composition {i}", stages, values)
        if c["expected"] != [] or rng.random() < 0.2:  # keep a few that emit nothing
            cases.append(c)
    return cases


def main():
    ensure_streamz()
    import logging

    logging.getLogger("streamz").setLevel(logging.CRITICAL)  # it logs the failures cases expect
    os.makedirs(FIXTURES, exist_ok=True)
    families = {
        "elementwise": elementwise(),
        "accumulate": accumulate(),
        "select": select(),
        "window": window(),
        "join": join(),
        "compositions": compositions(),
    }
    total = 0
    for family, cases in families.items():
        path = os.path.join(FIXTURES, f"{family}.json")
        with open(path, "w") as f:
            json.dump(cases, f, indent=1)
            f.write("\n")
        total += len(cases)
        marked = sum(1 for c in cases if c["difference"])
        print(f"{path}: {len(cases)} cases, {marked} marked as deliberate differences")
    print(f"{total} cases in all")


if __name__ == "__main__":
    main()
