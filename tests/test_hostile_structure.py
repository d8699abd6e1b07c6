"""Hostile and careless input, part 2: structure, amplification, quadratic paths, tabs.

The promise (docs: spec-format, "Command line"; python-api, `load`): any input ends
in a located SpecError (exit 1) or InputError (exit 2) in bounded time and memory;
never a RecursionError, a hang or a traceback. Each kind of fault is tested at the
entry point where it was found and, where one rule covers the kind, by a property:

- structure: every entry point (YAML text, YAML file, dict, a Spec built in Python;
  `load`, `check`, `build`, `export_onnx`) reads its input through one reader with
  the same limits of depth, nodes, cycles and types;
- amplification: template expansion counts every node it would copy, and refuses
  before copying;
- quadratic paths: a hint or a list in a message never grows with the spec, and a
  look-up for "did you mean" never scans every name;
- the checker's cost per layer barely grows with the spec (the figures are in
  benchmarks/, as ratios);
- a tab in a nested line's indentation is reported as a tab, where it is.
"""

from __future__ import annotations

import difflib
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convspec
from convspec import errors, geometry, source, templates
from convspec.errors import CloseNames, listing, quote
from convspec.schema import Spec
from convspec.python_data import read_python
from convspec.source import MAX_DEPTH, MAX_NODES, parse_yaml
from convspec.trace import load_and_check  # an invalid spec's report, as `convspec check` prints it
from support import Hang, watchdog  # tests/ is on sys.path (conftest.py)

ROOT = Path(__file__).resolve().parent.parent
HEADER = "input: {channels: 3, size: [8, 8]}\nlayers:\n"
BASE = {"input": {"channels": 3, "size": [8, 8]}, "layers": [{"type": "identity"}]}


def within(seconds: float, what: str, fn, *args, **kwargs):
    """`fn(*args, **kwargs)`, failing the test (not hanging it) past `seconds`: a bound on hangs, not a timing."""
    try:
        with watchdog(seconds, what):
            return fn(*args, **kwargs)
    except Hang as hang:
        pytest.fail(str(hang))


def refused(fn, *args, seconds: float = 60.0, **kwargs) -> errors.SpecError:
    """The SpecError `fn` raises (anything else, or nothing, fails the test)."""
    with pytest.raises(errors.SpecError) as info:
        within(seconds, getattr(fn, "__name__", "call"), fn, *args, **kwargs)
    return info.value


def nest(depth: int, leaf=None) -> list:
    """`depth` lists, each the only item of the one before: [[[...leaf...]]]."""
    inner = [] if leaf is None else [leaf]
    for _ in range(depth - 1):
        inner = [inner]
    return inner


def cyclic_layer() -> dict:
    """What yaml.safe_load gives for `layers: &a [{type: block, layers: *a}]`: a list inside itself."""
    layers: list = []
    layers.append({"type": "block", "layers": layers})
    return {"input": {"channels": 3, "size": [8, 8]}, "layers": layers}


def self_inside() -> dict:
    """A spec whose layer is the spec itself: a = {...}; a["layers"] = [a] (yaml.safe_load of `&a {layers: [*a]}`)."""
    spec: dict = {"input": {"channels": 3, "size": [8, 8]}}
    spec["layers"] = [spec]
    return spec


def deep_layer(depth: int = 100_000) -> dict:
    return {**BASE, "layers": [{"type": "fixed", "filter": nest(depth, 1.0)}]}


# ================================================================ 1. structure: one reader for every entry point


def _export(spec, tmp_path):
    from convspec.export import export_onnx

    return export_onnx(None, spec, tmp_path / "out.onnx")


def _build(spec, tmp_path):
    return convspec.build(spec)


ENTRY_POINTS = {
    "load": lambda spec, tmp_path: convspec.load(spec),
    "check": lambda spec, tmp_path: convspec.check(spec),
    "build": _build,
    "export_onnx": _export,
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    "make, words",
    [
        (self_inside, "contains itself"),
        (cyclic_layer, "contains itself"),
        (deep_layer, f"more than {MAX_DEPTH} levels"),
        (lambda: {**BASE, "blocks": {"b": nest(100_000)}}, f"more than {MAX_DEPTH} levels"),
    ],
    ids=["dict_in_itself", "list_in_itself", "deep_list", "deep_blocks"],
)
def test_python_data_is_read_with_yamls_limits_at_every_entry_point(entry, make, words, tmp_path):
    err = refused(ENTRY_POINTS[entry], make(), tmp_path)
    assert words in str(err)
    assert all(p.location.file == "<dict>" for p in err.problems)
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Spec.model_construct(input=BASE["input"], layers=cyclic_layer()["layers"]), "contains itself"),
        (lambda: Spec.model_construct(input=BASE["input"], layers=deep_layer()["layers"]), f"more than {MAX_DEPTH} levels"),
        (lambda: Spec.model_validate({**BASE, "blocks": {"b": cyclic_layer()}}), "contains itself"),
        (lambda: Spec.model_construct(input=BASE["input"], layers=[{"type": "conv", "out": "8", "kernel": 3}]), "`out` must be"),
        (lambda: Spec.model_construct(input=BASE["input"], layers=[{"type": "conv", "out": {1, 2}, "kernel": 3}]), "is a set"),
    ],
    ids=["constructed_cycle", "constructed_deep", "validated_cyclic_blocks", "constructed_wrong_type", "constructed_set"],
)
def test_a_spec_built_in_python_is_read_again_with_the_same_limits(entry, make, words, tmp_path):
    err = refused(ENTRY_POINTS[entry], make(), tmp_path)
    assert words in str(err)
    assert all(p.location.file == "<Spec>" for p in err.problems)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    "text, words",
    [
        (HEADER + "  - {type: fixed, filter: " + "[" * 150 + "1" + "]" * 150 + "}\n", f"more than {MAX_DEPTH} levels"),
        (HEADER.replace("layers:\n", "layers: &a\n") + "  - {type: block, layers: *a}\n", "refers to itself"),
        (HEADER + "  - &a {type: block, layers: [*a]}\n", "refers to itself"),
    ],
    ids=["deep", "list_in_itself", "layer_in_itself"],
)
@pytest.mark.parametrize("form", ["text", "file"])
def test_yaml_text_and_files_have_the_same_limits(entry, text, words, form, tmp_path):
    spec: str | Path = text
    if form == "file":
        spec = tmp_path / "spec.yaml"
        spec.write_text(text)
    err = refused(ENTRY_POINTS[entry], spec, tmp_path)
    assert words in str(err)
    assert all(p.location.line is not None for p in err.problems)


def test_node_budget_counts_an_object_each_time_it_is_reached():
    # "billion laughs" in Python: ten references to ten references to ... one list
    shared: list = [0] * 10
    for _ in range(8):
        shared = [shared] * 10
    err = refused(convspec.check, {**BASE, "blocks": {"b": shared}}, seconds=30)
    assert f"more than {MAX_NODES:,} nodes" in str(err)


def test_python_data_of_the_right_kinds_reads_as_yaml_would():
    numpy = pytest.importorskip("numpy")
    spec = {
        "input": {"channels": numpy.int64(3), "size": (8, 8)},  # numpy's ints, tuples as lists
        "layers": [{"type": "conv", "out": numpy.int32(4), "kernel": (3, 3), "init": {"weight": {"constant": numpy.float32(0.5)}}}],
    }
    report = convspec.check(spec)
    assert report.valid and report.outputs == {"conv_0": (1, 4, 6, 6)}
    assert report.spec.source.data["input"] == {"channels": 3, "size": [8, 8]}
    assert type(report.spec.source.data["input"]["channels"]) is int


def test_the_callers_dict_is_copied_not_kept():
    spec = {"input": {"channels": 3, "size": [8, 8]}, "layers": [{"type": "conv", "out": 4, "kernel": 3}]}
    loaded = convspec.load(spec)
    spec["layers"][0]["out"] = "changed later"
    assert loaded.source.data["layers"][0]["out"] == 4
    assert convspec.check(loaded).valid


@pytest.mark.parametrize(
    "value, words",
    [({1, 2}, "is a set"), (b"abc", "is a bytes"), (object(), "is a object"), (Path("x"), "pathlib")],
    ids=["set", "bytes", "object", "path"],
)
def test_values_a_spec_cannot_hold_are_located_by_path(value, words):
    err = refused(convspec.check, {**BASE, "layers": [{"type": "conv", "out": 4, "kernel": 3, "init": {"weight": value}}]})
    (problem,) = err.problems
    assert words in problem.message and "layers[0].init.weight" in problem.message
    assert problem.layer.path == "layers[0]"


def test_keys_that_are_not_strings_are_refused():
    err = refused(convspec.check, {**BASE, "layers": [{"type": "identity", 3: "x"}]})
    assert "has the key 3; keys are names" in str(err)


# A YAML-able tree: what both readers must read alike.
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text("abcxyz_", max_size=5))
_trees = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text("abkz", min_size=1, max_size=3), inner, max_size=4)),
    max_leaves=30,
)


@given(tree=_trees)
@settings(max_examples=150, deadline=None)
def test_python_data_reads_as_its_yaml_text_does(tree):
    data, _ = read_python({"a": tree})
    text_data, _ = parse_yaml(yaml.safe_dump({"a": tree}))
    assert data == text_data == {"a": tree}


@given(depth=st.integers(1, 3 * MAX_DEPTH), container=st.sampled_from(["list", "dict"]))
@settings(max_examples=60, deadline=None)
def test_python_and_yaml_refuse_the_same_depths(depth, container):
    if container == "list":
        value = nest(depth, 1)
    else:
        value = 1
        for _ in range(depth):
            value = {"k": value}
    outcomes = []
    for read in (lambda: read_python({"a": value}), lambda: parse_yaml(yaml.safe_dump({"a": value}, width=10**9))):
        try:
            read()
            outcomes.append("ok")
        except errors.SpecError as err:
            assert "nested too deeply" in str(err)
            outcomes.append("deep")
        except RecursionError:  # yaml.safe_dump itself recurses on the deepest trees
            outcomes.append(None)
    assert outcomes[1] is None or outcomes[0] == outcomes[1]
    assert outcomes[0] == ("ok" if depth + 1 <= MAX_DEPTH else "deep")  # the leaf sits at depth `depth` + 1


@given(tree=_trees, data=st.data())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_cycle_anywhere_is_found(tree, data):
    root = {"a": [tree]}
    containers = [root, root["a"]]
    stack = [tree]
    while stack:  # every container in the tree
        node = stack.pop()
        if isinstance(node, (list, dict)):
            containers.append(node)
            stack.extend(node.values() if isinstance(node, dict) else node)
    where = data.draw(st.sampled_from(containers))
    target = data.draw(st.sampled_from([c for c in containers if _reaches(c, where)]))
    if isinstance(where, list):
        where.append(target)
    else:
        where["cycle"] = target
    with pytest.raises(errors.SpecError, match="contains itself"):
        read_python(root)


def _reaches(ancestor, node) -> bool:
    """Whether `node` is `ancestor` or inside it (so that pointing `node` at `ancestor` closes a cycle)."""
    stack = [ancestor]
    while stack:
        current = stack.pop()
        if current is node:
            return True
        if isinstance(current, (list, dict)):
            stack.extend(current.values() if isinstance(current, dict) else current)
    return False


# ================================================================ 2. amplification


def _big_default(items: int, uses: int) -> str:
    """A template whose parameter's default is a list of `items` numbers, placed by `uses` instances."""
    value = "[" + ", ".join("0" for _ in range(items)) + "]"
    return (
        f"blocks:\n  b:\n    params: {{v: {value}}}\n    type: conv\n    out: 2\n    kernel: 3\n    init: {{weight: $v}}\n"
        + HEADER + "  - {type: use, block: b}\n" * uses
    )


def _big_with(items: int, placeholders: int) -> str:
    """One instance whose `with:` value (a list of `items` numbers) the template places `placeholders` times."""
    value = "[" + ", ".join("0" for _ in range(items)) + "]"
    body = "      - {type: conv, out: 2, kernel: 3, init: {weight: $v}}\n" * placeholders
    return (
        f"blocks:\n  b:\n    params: {{v: required}}\n    type: block\n    layers:\n{body}"
        + HEADER + f"  - {{type: use, block: b, with: {{v: {value}}}}}\n"
    )


def _nested_uses(levels: int, fan: int) -> str:
    """Block t0 is a conv; block tN holds `fan` uses of tN-1: fan ** levels convs from one use."""
    lines = ["blocks:", "  t0: {type: conv, out: 2, kernel: 1}"]
    for level in range(1, levels + 1):
        lines.append(f"  t{level}: {{type: block, layers: [{', '.join([f'{{type: use, block: t{level - 1}}}'] * fan)}]}}")
    return "\n".join(lines) + "\n" + HEADER + f"  - {{type: use, block: t{levels}}}\n"


@pytest.mark.parametrize(
    "text",
    [_big_default(20_000, 200), _big_with(20_000, 200), _nested_uses(9, 10)],
    ids=["default_used_200_times", "with_value_placed_200_times", "uses_of_uses"],
)
def test_template_amplification_is_refused_before_copying(text, tmp_path):
    assert len(text) < 150_000  # a small file
    spec = tmp_path / "amplified.yaml"
    spec.write_text(text)
    # a real process under a memory cap: the expansion used to take 38 s and 1.7 GB
    cap = 1024 * 1024 * 1024

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    proc = subprocess.run(
        [sys.executable, "-m", "convspec", "check", str(spec)], cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=limit
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"the block templates expand to more than {MAX_NODES:,} nodes" in proc.stderr
    assert proc.stderr.startswith(f"{spec}:"), proc.stderr  # located: FILE:LINE:COL
    line, column = proc.stderr.split(":")[1:3]
    assert int(line) > 0 and int(column) > 0


def test_an_instance_placed_too_deep_is_refused():
    # each within the YAML's depth limit; together, a layer 170 levels deep
    body = "{type: block, layers: [" * 40 + "{type: fixed, filter: $v}" + "]}" * 40
    text = (
        f"blocks:\n  b:\n    params: {{v: required}}\n    type: block\n    layers: [{body}]\n"
        + HEADER + "  - {type: use, block: b, with: {v: " + "[" * 90 + "1" + "]" * 90 + "}}\n"
    )
    err = refused(convspec.check, text)
    (problem,) = err.problems
    assert "levels deep, more than 100" in problem.message
    assert problem.location.line == 8 and problem.layer.path == "layers[0]"


@given(items=st.integers(0, 120), uses=st.integers(1, 40))
@settings(max_examples=60, deadline=None)
def test_expansion_is_refused_exactly_when_the_nodes_it_creates_pass_the_budget(items, uses, monkeypatch_budget):
    data, src = parse_yaml(_big_default(items, uses))
    created = uses * (items + 6)  # per instance: the conv's mapping, 3 keys, the init mapping, and the list
    try:
        expansion = templates.expand(data, src)
    except errors.SpecError as err:
        assert created > monkeypatch_budget
        assert "expand to more than" in str(err)
        return
    assert created <= monkeypatch_budget
    assert len(expansion.data["layers"]) == uses
    assert all(len(layer["init"]["weight"]) == items for layer in expansion.data["layers"])


@pytest.fixture(scope="module")
def monkeypatch_budget():
    """A small node budget for expansion (hypothesis runs many examples; the real one is 200,000)."""
    budget = 2_000
    saved = templates.MAX_NODES
    templates.MAX_NODES = budget
    yield budget
    templates.MAX_NODES = saved


# ================================================================ 3. quadratic error paths


def _unknown_froms(layers: int) -> str:
    return HEADER + "".join(f"  - {{name: l{i}, type: identity, from: x{i}}}\n" for i in range(layers))


class _CountingDifflib:
    """Counts the names `difflib.get_close_matches` is given to compare, in all."""

    def __init__(self):
        self.compared = 0
        self.calls = 0

    def get_close_matches(self, word, possibilities, n=3, cutoff=0.6):
        possibilities = list(possibilities)
        self.compared += len(possibilities)
        self.calls += 1
        return difflib.get_close_matches(word, possibilities, n, cutoff)


@pytest.mark.parametrize("layers", [200, 4_000])
def test_unknown_from_names_cost_a_bounded_look_up_each(layers, monkeypatch):
    counting = _CountingDifflib()
    monkeypatch.setattr(errors, "difflib", counting)
    report = within(120, f"{layers} unknown froms", load_and_check, _unknown_froms(layers))
    assert len(report.errors) == layers
    # every look-up compares a handful of names, not every earlier one: linear, not quadratic
    assert counting.compared <= 20 * counting.calls
    assert counting.calls >= layers  # each still gets its look-up
    assert max(len(p.message) for p in report.errors) < 300


def test_a_typo_among_thousands_of_names_is_still_found():
    layers = "".join(f"  - {{name: layer_{i}, type: identity}}\n" for i in range(5_000))
    report = load_and_check(HEADER + layers + "  - {type: identity, from: layr_4321}\n")
    (problem,) = report.errors
    assert "did you mean 'layer_4321'?" in problem.message


def test_a_megabyte_spec_of_unknown_names_checks_to_the_end():
    # the case that did not finish in 600 s; the layer limit stops the walk at 10,000
    text = HEADER + "".join(f"  - {{type: identity, from: x{i}}}\n" for i in range(39_000))
    assert len(text) > 1_300_000
    report = within(120, "1.3 MB of unknown froms", load_and_check, text)
    assert len(report.errors) == 10_001
    assert "more than 10,000 layers" in report.errors[-1].message
    assert max(len(p.message) for p in report.errors) < 300


# Each case: a spec whose mistakes each come with a list that grew with the spec before.
GROWING = {
    "blocks": (
        "blocks:\n" + "".join(f"  blk{i}: {{type: identity}}\n" for i in range(3_000)) + HEADER + "  - {type: use, block: zzz}\n",
        "blocks: blk0, blk1",
    ),
    "params": (
        "blocks:\n  b:\n    params: {" + ", ".join(f"p{i}: 1" for i in range(3_000)) + "}\n    type: identity\n"
        "    name_hint: [" + ", ".join(f"$p{i}" for i in range(3_000)) + "]\n" + HEADER + "  - {type: use, block: b, with: {zzz: 1}}\n",
        "its parameters: p0, p1",
    ),
    "outputs": (
        HEADER + "".join(f"  - {{name: l{i}, type: identity}}\n" for i in range(3_000)) + "outputs: [" + ", ".join(f"z{i}" for i in range(3_000)) + "]\n",
        "which is not a top-level layer",
    ),
    "earlier_names": (HEADER + "".join(f"  - {{name: l{i}, type: identity}}\n" for i in range(3_000)) + "  - {type: identity, from: zzzzzz}\n", "3,001 in all"),
    "split_parts": (HEADER.replace("channels: 3", "channels: 3000") + "  - {name: s, type: split, parts: 3000}\n  - {type: identity, from: s.9999}\n", "s.0, s.1, s.2, ..., s.2999"),
    "required_params": (
        "blocks:\n  b:\n    params: {" + ", ".join(f"p{i}: required" for i in range(3_000)) + "}\n    type: identity\n"
        "    name_hint: [" + ", ".join(f"$p{i}" for i in range(3_000)) + "]\n" + HEADER + "  - {type: use, block: b}\n",
        "3,000 in all",
    ),
}


@pytest.mark.parametrize("case", GROWING)
def test_lists_in_messages_stay_short(case):
    text, words = GROWING[case]
    try:
        found = within(60, case, load_and_check, text).errors
    except errors.SpecError as err:
        found = err.problems
    assert found
    assert any(words in p.message for p in found), [p.message[:300] for p in found][:5]
    assert max(len(p.message) for p in found) < 600, max((p.message for p in found), key=len)[:600]


def test_divisors_of_a_huge_prime_channel_count_are_found_at_once():
    text = HEADER + "  - {name: big, type: pointwise, out: 2147483647}\n" + "  - {type: group, groups: 7, out: 14, kernel: 1, from: big}\n" * 3_000
    report = within(60, "3,000 groups on a prime", load_and_check, text)
    assert len(report.errors) == 3_000
    assert "(divisors: 1, 2147483647)" in report.errors[0].message


def test_an_aliased_long_string_is_quoted_short_in_every_message():
    # one megabyte, named by 2,000 aliases: messages must not copy it 2,000 times
    text = HEADER + f"  - {{type: identity, from: &big {'a' * 1_000_000}}}\n" + "  - {type: identity, from: *big}\n" * 2_000
    try:
        found = within(60, "aliased megabyte", load_and_check, text).errors
    except errors.SpecError as err:
        found = err.problems
    assert len(found) >= 2_000
    assert sum(len(str(p)) for p in found) < 2_000 * 400


def test_a_long_name_in_layer_labels_is_cut():
    name = "n" * 10_000
    report = load_and_check(HEADER + f"  - {{name: {name}, type: conv, out: 2, kernel: 9}}\n")
    (problem,) = report.errors
    assert len(str(problem)) < 500 and problem.layer.name.startswith("nnnn") and len(problem.layer.name) < 110


@given(names=st.lists(st.text("abcdefgh_0123", min_size=1, max_size=12), min_size=1, max_size=300, unique=True), word=st.text("abcdefgh_0123", min_size=1, max_size=14))
@settings(max_examples=150, deadline=None)
def test_close_names_are_close_and_found_without_scanning(names, word):
    index = CloseNames(names)
    found = index.close(word, n=3)
    assert set(found) <= set(names) and len(found) <= 3
    assert all(difflib.SequenceMatcher(None, name, word).ratio() >= 0.6 for name in found)
    if len(names) <= CloseNames.SCAN:  # small sets: exactly difflib's answer
        assert found == difflib.get_close_matches(word, names, n=3, cutoff=0.6)
    elif word not in names and any(_one_edit(word, name) for name in names):
        typo_targets = [name for name in names if _one_edit(word, name)]
        if all(difflib.SequenceMatcher(None, t, word).ratio() >= 0.6 for t in typo_targets):
            assert found, (word, typo_targets)


def _one_edit(a: str, b: str) -> bool:
    """One substitution, insertion or deletion apart."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


@given(value=st.one_of(st.text(max_size=5_000), st.integers(), st.lists(st.integers(), max_size=3_000)))
def test_quoted_values_are_short(value):
    assert len(quote(value)) <= errors.QUOTED_CHARS + 40


@given(names=st.lists(st.text(min_size=1, max_size=20), max_size=5_000), last=st.booleans())
def test_listings_are_short(names, last):
    assert len(listing(names, last=last)) <= errors.LISTED_NAMES * 22 + 40


@given(n=st.integers(1, 3_000))
@settings(max_examples=200)
def test_divisors_are_every_divisor(n):
    assert geometry.divisors(n) == [d for d in range(1, n + 1) if n % d == 0]


@given(p=st.sampled_from([2, 3, 7, 46_337, 2_147_483_647]), q=st.sampled_from([1, 2, 5, 46_339, 999_999_999_989]), k=st.integers(0, 2))
@settings(deadline=None)
def test_divisors_of_large_products(p, q, k):
    # channel counts up to 2**31, and sums of thousands of them (a concat)
    n = p ** k * q
    found = geometry.divisors(n)
    assert found == sorted(set(found)) and found[0] == 1 and found[-1] == n
    assert all(n % d == 0 for d in found)
    assert all(n // d in found for d in found)  # divisors come in pairs
    assert {p ** i for i in range(k + 1)} <= set(found) and q in found


# 4. the checker's cost per layer: benchmarks/run.py --only scaling (tests/test_benchmarks.py runs it small)


# ================================================================ 5. tabs in nested indentation


NESTED_TABS = {
    "list_item_under_layers": (HEADER.replace("layers:\n", "") + "layers:\n  - type: residual\n    layers:\n\t  - {type: identity}\n", 5, 1),
    "key_of_a_nested_layer": (HEADER + "  - type: residual\n    layers:\n      - type: conv\n\t\tout: 2\n", 6, 1),
    "after_spaces": (HEADER + "  - type: residual\n    layers:\n    \t- {type: identity}\n", 5, 5),
    "input_key": ("input:\n\tchannels: 3\n  size: [8, 8]\nlayers:\n  - {type: identity}\n", 2, 1),
    "literal_weight_row": (HEADER + "  - type: conv\n    out: 2\n    kernel: 3\n    init:\n      weight:\n\t\t- 1\n", 8, 1),
    "tab_only_line_between_items": (HEADER + "  - {type: identity}\n\t\n  - {type: identity}\n", 4, 1),
    "mid_indentation": (HEADER + "  - type: conv\n    out: 2\n   \tkernel: 3\n", 5, 4),
}


@pytest.mark.parametrize("case", NESTED_TABS)
def test_a_tab_in_nested_indentation_is_reported_as_a_tab(case):
    text, line, column = NESTED_TABS[case]
    err = refused(convspec.check, text)
    (problem,) = err.problems
    assert "tab" in problem.message and "spaces" in problem.message
    assert "cannot start any token" not in problem.message
    assert (problem.location.line, problem.location.column) == (line, column)


SPEC_FILES = sorted((ROOT / "specs").glob("*.yaml"))


@given(spec=st.sampled_from(SPEC_FILES), data=st.data())
@settings(max_examples=60, deadline=None)
def test_a_tab_put_into_any_indentation_is_reported_at_that_tab(spec, data):
    lines = spec.read_text().split("\n")
    indented = [i for i, line in enumerate(lines) if line.startswith(" ") and line.strip() and not line.strip().startswith("#")]
    index = data.draw(st.sampled_from(indented))
    width = len(lines[index]) - len(lines[index].lstrip(" "))
    column = data.draw(st.integers(0, width - 1))
    lines[index] = lines[index][:column] + "\t" + lines[index][column + 1 :]
    try:
        parse_yaml("\n".join(lines), "tabbed.yaml")
    except errors.SpecError as err:
        (problem,) = err.problems
        assert "cannot start any token" not in problem.message
        assert "tab" in problem.message, problem.message
        assert (problem.location.line, problem.location.column) == (index + 1, column + 1)
    # else: a tab YAML allows there (inside a flow collection, say); nothing to report


@pytest.mark.parametrize(
    "line, per_layer",
    [("  - {{type: conv}}\n", 2), ("  - {{type: conv{i}x}}\n", 1), ("  - {{type: identity, bogus{i}: 1}}\n", 1)],
    ids=["missing_keys", "unknown_types", "unknown_keys"],
)
def test_tens_of_thousands_of_schema_mistakes_are_all_reported(line, per_layer):
    layers = 25_000
    text = HEADER + "".join(line.format(i=i) for i in range(layers))
    err = refused(convspec.check, text, seconds=120)
    mistakes = [p for p in err.problems if "more than 10,000 layers" not in p.message]
    assert len(mistakes) == layers * per_layer
    assert max(len(p.message) for p in err.problems) < 400
