"""Foreign state_dicts (torchvision, timm, your own training code) mapped onto a spec's model.

The keys of another codebase say nothing convspec can trust (`layer1.0.bn1.weight` against
`layer1.0.block.conv1.norm.weight`), but its order can be: a PyTorch state_dict lists tensors
in registration order, and a network written in the same order as the spec gives the same
sequence of (tensor name, shape), where the name is the last part of the key (`weight`,
`bias`, `running_mean`, `running_var`, `num_batches_tracked`). So the mapping is an alignment
of two sequences by that signature, with no forward pass: `difflib.SequenceMatcher` finds the
longest runs that agree, and everything outside them is named (unmatched, or pairs whose
shapes differ).

Two adaptations follow timm's options for pretrained weights:

- `adapt_input_conv`: a first conv trained on 3 channels given another number of input
  channels, by `timm.models._manipulate.adapt_input_conv`'s rule (sum over the input channels
  for 1; repeat the channels and scale by in/new for more);
- `reset_classifier`: a classifier (the spec's last layer with weights) whose class count
  differs keeps the spec's own initial weights, as timm drops the head when `num_classes`
  differs from the pretrained one.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import ConvspecError, InputError, Location, Problem
from .limits import flag_argument, path_argument, seed_argument
from .report import Report
from .trace import checked_report

# where training scripts and timm / Lightning checkpoints keep the state_dict in a dict of their own
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema", "module")
# prefixes that wrapping modules (DataParallel, torch.compile) put on every key
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class WeightsError(ConvspecError):
    """The weights do not map onto the spec: unmatched or ambiguous tensors (exit status 1)."""

    exit_code = 1


@dataclass(frozen=True)
class MappedTensor:
    """One row of the mapping: `source` key (None when the spec's initial value is kept) -> `target` key.

    `how` is `copied`, `adapted` (the first conv, to other input channels), `reset` (the classifier
    keeps the spec's initial weights) or `initial` (no source tensor: with `partial`).
    """

    source: str | None
    target: str
    shape: tuple[int, ...]
    source_shape: tuple[int, ...] | None
    how: str = "copied"


@dataclass
class MappingTable:
    """What went where: `rows` in the spec's order, and what could not be mapped.

    `unmatched_source` / `unmatched_target` are (key, shape) pairs; `mismatched` the pairs the
    order aligns but whose shapes differ; `ambiguous` the source keys that fit a spec tensor by
    name and shape but not in order (the two networks register them differently).
    """

    rows: list[MappedTensor] = field(default_factory=list)
    unmatched_source: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    unmatched_target: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], str, tuple[int, ...]]] = field(default_factory=list)
    ambiguous: list[tuple[str, str]] = field(default_factory=list)
    # the first position where the two sequences differ: (index, source key and shape, target key and shape)
    first_difference: tuple[int, str | None, tuple[int, ...] | None, str | None, tuple[int, ...] | None] | None = None

    @property
    def complete(self) -> bool:
        """Every source and every spec tensor accounted for."""
        return not (self.unmatched_source or self.unmatched_target or self.mismatched or self.ambiguous)

    @property
    def mapped(self) -> int:
        """How many spec tensors took a source tensor (copied or adapted)."""
        return sum(row.how in ("copied", "adapted") for row in self.rows)

    def problems(self, origin: str) -> list[Problem]:
        """The mismatch as messages, the first one first (its keys and shapes named)."""
        where = Location(origin)
        found = []
        if self.first_difference is not None:
            index, src, src_shape, dst, dst_shape = self.first_difference
            source_text = f"{src} {list(src_shape)}" if src is not None else "nothing (the source ends)"
            target_text = f"the spec's {dst} {list(dst_shape)}" if dst is not None else "nothing (the spec ends)"
            hint = _hint(src_shape, dst_shape) if src_shape is not None and dst_shape is not None else ""
            found.append(Problem(f"first mismatch, tensor {index + 1} in order: {source_text} against {target_text}{hint}", where))
        if self.mismatched:
            rest = "; ".join(f"{s} {list(a)} vs {t} {list(b)}{_hint(a, b)}" for s, a, t, b in self.mismatched[:5])
            more = " ..." if len(self.mismatched) > 5 else ""
            found.append(Problem(f"{len(self.mismatched)} aligned pair(s) differ in shape: {rest}{more}", where))
        if self.ambiguous:
            listed = ", ".join(f"{s} ~ {t}" for s, t in self.ambiguous[:5])
            found.append(Problem(f"ambiguous: {len(self.ambiguous)} tensor(s) fit the spec by name and shape but not in order "
                                 f"({listed}{' ...' if len(self.ambiguous) > 5 else ''})", where))  # fmt: skip
        if self.unmatched_source:
            found.append(Problem(f"unmatched in the source ({len(self.unmatched_source)}): {_keys(self.unmatched_source)}", where))
        if self.unmatched_target:
            found.append(Problem(f"missing for the spec ({len(self.unmatched_target)}): {_keys(self.unmatched_target)}", where))
        return found

    def lines(self) -> list[str]:
        """The table as text: `source -> spec  shape  how`, one row per spec tensor."""
        width = max((len(r.source or "-") for r in self.rows), default=0)
        out = []
        for row in self.rows:
            shape = "x".join(map(str, row.shape)) or "scalar"
            note = "" if row.how == "copied" else f"  ({row.how}{_from_shape(row)})"
            out.append(f"{row.source or '-':<{width}} -> {row.target}  {shape}{note}")
        return out


def _from_shape(row: MappedTensor) -> str:
    if row.how == "adapted" and row.source_shape is not None:
        return f" from {'x'.join(map(str, row.source_shape))}"
    return ""


def _keys(entries: list[tuple[str, tuple[int, ...]]]) -> str:
    shown = ", ".join(f"{k} {list(s)}" for k, s in entries[:8])
    return shown + (" ..." if len(entries) > 8 else "")


def _hint(src: tuple[int, ...], dst: tuple[int, ...]) -> str:
    if len(src) == len(dst) >= 3 and src[0] == dst[0] and src[2:] == dst[2:] and src[1] != dst[1]:
        return " (other input channels: --adapt-input-conv)"
    if len(src) == len(dst) and len(src) in (1, 2) and src[1:] == dst[1:] and src[0] != dst[0]:
        return " (another class count: --reset-classifier)"
    return ""


# ---------------------------------------------------------------- reading


def source_state_dict(payload: Any, origin: str) -> dict[str, torch.Tensor]:
    """The state_dict in what a `.pt` / `.pth` / `.safetensors` file held.

    A mapping of names to tensors is taken as it is; a checkpoint dict (a training script's,
    timm's, Lightning's, convspec's own) is searched for the state_dict under `CHECKPOINT_KEYS`.
    The `module.` / `_orig_mod.` prefixes of wrapped models are removed when every key has them.
    InputError when no state_dict of dense CPU tensors is found.
    """
    from .checkpoint import check_state_dict

    if isinstance(payload, Mapping) and not all(isinstance(v, torch.Tensor) for v in payload.values()):
        for key in CHECKPOINT_KEYS:
            inner = payload.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                payload = inner
                break
        else:
            raise InputError([Problem(f"no state_dict found: the file holds a dict without tensors at "
                                      f"{', '.join(CHECKPOINT_KEYS)}", Location(origin))])  # fmt: skip
    check_state_dict(payload, origin)
    state = dict(payload)
    for prefix in WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def read_source(path: str | Path) -> dict[str, torch.Tensor]:
    """A foreign state_dict from a `.safetensors` file or a `.pt` / `.pth` file (read with weights_only=True).

    A `.safetensors` file keeps no registration order: map it with `registration_order=False`.
    """
    from .checkpoint import read_tensors_file

    path = path_argument("path", path)
    return source_state_dict(read_tensors_file(path), str(path))


# ---------------------------------------------------------------- mapping


def spec_tensors(report: Report) -> dict[str, torch.Tensor]:
    """The state_dict the spec's model has, on the meta device: its keys, shapes and dtypes in order, no memory."""
    from .builder import BuildContext
    from .graph import Network

    with torch.device("meta"):
        return Network(BuildContext(report.spec.dims).nodes(report.layers), report.spec.output_names, None).state_dict()


Signature = tuple[str, tuple[int, ...]]  # (last key part, shape): what the alignment compares


def _signature(key: str, tensor: torch.Tensor) -> Signature:
    return key.rsplit(".", 1)[-1], tuple(tensor.shape)


# a module's own tensors come first in its state_dict, parameters before buffers, in torch's modules' order
LEAF_ORDER = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3, "num_batches_tracked": 4}
SEARCH_STEPS = 200_000  # beyond this, the names' natural order is taken as it is


def _natural(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def restore_order(keys: list[str], signatures: dict[str, tuple[str, tuple[int, ...]]], target: list[tuple[str, tuple[int, ...]]]) -> list[str]:
    """`keys` in registration order, for a source that lost it (a `.safetensors` file lists its tensors by name).

    The keys form a module tree; a module's own tensors come first (LEAF_ORDER), then its children
    in some order. The children's order is searched depth first, in the names' natural order
    (`layer1.2` before `layer1.10`), for the one whose tensors line up with the spec's sequence of
    (name, shape); then, if none does, with the shapes' ranks only (another input or class count).
    Children whose tensors are alike keep their natural order, as code registers `conv1` before
    `conv2`. Without any fit (another architecture), the natural order is returned.
    """
    tree: dict = {"": [], "children": {}}
    for key in keys:
        node = tree
        for part in key.split(".")[:-1]:
            node = node["children"].setdefault(part, {"": [], "children": {}})
        node[""].append(key)

    def natural_order(node: dict) -> list[str]:
        own = sorted(node[""], key=lambda k: (LEAF_ORDER.get(k.rsplit(".", 1)[-1], 9), k))
        return own + [k for name in sorted(node["children"], key=_natural) for k in natural_order(node["children"][name])]

    for fits in (lambda a, b: a == b, lambda a, b: a[0] == b[0] and len(a[1]) == len(b[1])):
        steps = [0]

        def place(node: dict, pos: int) -> list[str] | None:
            own = sorted(node[""], key=lambda k: (LEAF_ORDER.get(k.rsplit(".", 1)[-1], 9), k))
            if any(pos + i >= len(target) or not fits(signatures[k], target[pos + i]) for i, k in enumerate(own)):
                return None
            return place_children(sorted(node["children"], key=_natural), node, pos + len(own), own)

        def place_children(names: list[str], node: dict, pos: int, done: list[str]) -> list[str] | None:
            if not names:
                return done
            if pos >= len(target):  # the source goes on past the spec: the rest as named
                return done + [k for n in names for k in natural_order(node["children"][n])]
            for name in names:
                steps[0] += 1
                if steps[0] > SEARCH_STEPS:
                    return None
                placed = place(node["children"][name], pos)
                if placed is not None:
                    rest = place_children([n for n in names if n != name], node, pos + len(placed), done + placed)
                    if rest is not None:
                        return rest
            return None

        found = place(tree, 0)
        if found is not None:
            return found
    return natural_order(tree)


def adapt_conv_in_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A conv weight (out, in, *kernel) for `in_channels` inputs, by timm's `adapt_input_conv` rule.

    1 channel: the sum over the input channels (a grey image as the sum of R, G and B). More:
    the input channels repeated and cut to `in_channels`, scaled by in / in_channels so the
    response to an input spread over every channel keeps its size. timm states it for 3 source
    channels; the same rule holds for any. The dtype is kept (half precision is summed in float32).
    """
    dtype = weight.dtype
    if dtype not in (torch.float32, torch.float64):
        weight = weight.float()
    source = weight.shape[1]
    if in_channels == 1:
        adapted = weight.sum(dim=1, keepdim=True)
    else:
        repeats = math.ceil(in_channels / source)
        adapted = weight.repeat(1, repeats, *([1] * (weight.dim() - 2)))[:, :in_channels] * (source / in_channels)
    return adapted.to(dtype)


def _is_input_conv(shape: tuple[int, ...], source_shape: tuple[int, ...]) -> bool:
    return len(shape) == len(source_shape) >= 3 and shape[0] == source_shape[0] and shape[2:] == source_shape[2:]


def _is_classifier_resize(shape: tuple[int, ...], source_shape: tuple[int, ...]) -> bool:
    return len(shape) == len(source_shape) and shape[0] != source_shape[0] and shape[1:] == source_shape[1:]


def map_weights(
    spec: Any,
    state_dict: Mapping[str, torch.Tensor],
    *,
    partial: bool = False,
    adapt_input_conv: bool = False,
    reset_classifier: bool = False,
    seed: int = 0,
    input_shape: Any = None,
    report: Report | None = None,
    origin: str = "state_dict",
    registration_order: bool = True,
) -> tuple[dict[str, torch.Tensor], MappingTable]:
    """Map a foreign state_dict onto the spec's model by order and shapes: `(state_dict, table)`.

    The returned state_dict has the spec model's keys, in its order, and loads into
    `convspec.build(spec)` as it is (`load_state_dict`); `table` says which source key gave
    each tensor. The tensors are aligned by (last key part, shape) in registration order (see
    the module's doc), so no forward pass is run and the source's key names do not matter.

    Without `partial`, every source tensor must find its spec tensor and every spec tensor its
    source, else WeightsError (exit status 1) naming the first mismatch and listing the rest.
    With `partial`, spec tensors without a source keep the initial weights of a build with
    `seed`, and source tensors without a place are left out; both stay listed in the table.
    `adapt_input_conv` and `reset_classifier` are timm's options (see the module's doc); a
    source tensor converted from another floating dtype is cast to the spec's.
    `registration_order=False` says the state_dict's order is not its model's (a `.safetensors`
    file lists tensors by name): the order is then recovered from its module tree (`restore_order`).
    Raises SpecError for an invalid spec and InputError for a `state_dict` that is not a
    mapping of names to dense CPU tensors.
    """
    from .checkpoint import check_state_dict

    partial = flag_argument("partial", partial)
    adapt_input_conv = flag_argument("adapt_input_conv", adapt_input_conv)
    reset_classifier = flag_argument("reset_classifier", reset_classifier)
    seed = seed_argument(seed)
    check_state_dict(state_dict, origin)
    report, _ = checked_report(spec, input_shape, report)
    target = spec_tensors(report)
    target_keys, counters = _keys_to_map(list(target), list(state_dict))
    target_sigs = [_signature(k, target[k]) for k in target_keys]
    source_keys = list(state_dict)
    if not registration_order:
        source_keys = restore_order(source_keys, {k: _signature(k, state_dict[k]) for k in source_keys}, target_sigs)
    source_sigs = [_signature(k, state_dict[k]) for k in source_keys]
    table = MappingTable()
    if source_sigs == target_sigs:  # the common case, without the alignment's quadratic worst case
        alignment = _Alignment(dict(zip(target_keys, source_keys)))
    else:
        options = (adapt_input_conv, reset_classifier, next((k for k in target_keys if target[k].dim() >= 3), None), _classifier_keys(target_keys))
        alignment = _align((source_keys, source_sigs), (target_keys, target_sigs), table, *options)
    _refuse_unmapped(table, alignment, partial, origin)
    initial = None
    if alignment.reset or len(alignment.chosen) < len(target_keys):
        from .builder import build_from_report

        initial = build_from_report(report, seed=seed).state_dict()
    mapped = _mapped_tensors(state_dict, target, target_keys, alignment, initial, table)
    if counters:  # in the spec's order again, each counter at its initial value (0: no step taken)
        mapped = {key: mapped[key] if key in mapped else torch.zeros((), dtype=torch.long) for key in target}
        table.rows += [MappedTensor(None, key, (), None, "initial") for key in counters]
    return mapped, table


@dataclass
class _Alignment:
    """Which source key fills each spec key (`chosen`), and the spec keys timm's options `adapted` or `reset`."""

    chosen: dict[str, str] = field(default_factory=dict)
    adapted: set[str] = field(default_factory=set)
    reset: set[str] = field(default_factory=set)


def _keys_to_map(target_keys: list[str], source_keys: list[str]) -> tuple[list[str], list[str]]:
    """The spec keys a source must fill, and BatchNorm's step counters left at their initial value.

    Older checkpoints lack the counters (load_state_dict accepts them): when no source key is one, none is asked for.
    """
    counters = [k for k in target_keys if k.endswith(BATCH_COUNTER)]
    if counters and not any(k.endswith(BATCH_COUNTER) for k in source_keys):
        return [k for k in target_keys if not k.endswith(BATCH_COUNTER)], counters
    return target_keys, []


def _align(
    source: tuple[list[str], list[Signature]], target: tuple[list[str], list[Signature]], table: MappingTable,
    adapt_input_conv: bool, reset_classifier: bool, first_weight: str | None, classifier: set[str],
) -> _Alignment:
    """Align two sequences of (key, signature) that differ, with `difflib.SequenceMatcher`; what stays apart goes into `table`."""
    (source_keys, source_sigs), (target_keys, target_sigs) = source, target
    alignment = _Alignment()
    matcher = difflib.SequenceMatcher(None, source_sigs, target_sigs, autojunk=False)
    for op, s0, s1, t0, t1 in matcher.get_opcodes():
        if op == "equal":
            alignment.chosen.update(zip(target_keys[t0:t1], source_keys[s0:s1]))
            continue
        pairs = list(zip(range(s0, s1), range(t0, t1))) if (s1 - s0) == (t1 - t0) else []
        paired_s, paired_t = set(), set()
        for si, ti in pairs:
            s_key, t_key = source_keys[si], target_keys[ti]
            s_leaf, s_shape = source_sigs[si]
            t_leaf, t_shape = target_sigs[ti]
            if s_leaf != t_leaf:
                continue
            paired_s.add(si), paired_t.add(ti)
            if adapt_input_conv and t_key == first_weight and _is_input_conv(t_shape, s_shape):
                alignment.chosen[t_key] = s_key
                alignment.adapted.add(t_key)
            elif reset_classifier and t_key in classifier and _is_classifier_resize(t_shape, s_shape):
                alignment.reset.add(t_key)
                alignment.chosen[t_key] = s_key
            else:
                table.mismatched.append((s_key, s_shape, t_key, t_shape))
        table.unmatched_source += [(source_keys[i], source_sigs[i][1]) for i in range(s0, s1) if i not in paired_s]
        table.unmatched_target += [(target_keys[i], target_sigs[i][1]) for i in range(t0, t1) if i not in paired_t]
    table.first_difference = _first_difference(source, target, alignment.adapted | alignment.reset)
    table.ambiguous = _ambiguous(table)
    return alignment


def _first_difference(source: tuple[list[str], list[Signature]], target: tuple[list[str], list[Signature]], resolved: set[str]) -> tuple:
    """(index, source key and shape, spec key and shape) where the sequences first differ, past the differences `resolved`."""
    (source_keys, source_sigs), (target_keys, target_sigs) = source, target
    index = next(
        (i for i, (a, b) in enumerate(zip(source_sigs, target_sigs)) if a != b and target_keys[i] not in resolved),
        min(len(source_sigs), len(target_sigs)),
    )
    return (
        index,
        *((source_keys[index], source_sigs[index][1]) if index < len(source_keys) else (None, None)),
        *((target_keys[index], target_sigs[index][1]) if index < len(target_keys) else (None, None)),
    )


def _ambiguous(table: MappingTable) -> list[tuple[str, str]]:
    """(source key, spec key) pairs left unmatched that fit each other by name and shape: the orders disagree there."""
    leftover: dict[Signature, list[str]] = {}
    for key, shape in table.unmatched_target:
        leftover.setdefault((key.rsplit(".", 1)[-1], shape), []).append(key)
    found = []
    for key, shape in table.unmatched_source:
        fits = leftover.get((key.rsplit(".", 1)[-1], shape))
        if fits:
            found.append((key, fits[0]))
    return found


def _refuse_unmapped(table: MappingTable, alignment: _Alignment, partial: bool, origin: str) -> None:
    """WeightsError for a mapping that is incomplete without `partial`, or, with it, ambiguous or empty."""
    if not table.complete and not partial:
        raise WeightsError(table.problems(origin))
    if partial and table.ambiguous:  # tensors that fit by name and shape but not in order: the alignment is suspect
        raise WeightsError(table.problems(origin) + [Problem(
            "--partial writes only a mapping whose order is certain: ambiguous tensors mean the orders disagree, "
            "so some tensors could land in the wrong layer; map onto a spec whose layers follow the source's order"
        )])
    if partial and not alignment.chosen:
        raise WeightsError(table.problems(origin) + [Problem("no tensor of the source maps onto the spec: nothing to write")])


def _mapped_tensors(
    state_dict: Mapping[str, torch.Tensor], target: dict[str, torch.Tensor], target_keys: list[str], alignment: _Alignment,
    initial: dict[str, torch.Tensor] | None, table: MappingTable,
) -> dict[str, torch.Tensor]:
    """The spec's state_dict from the source tensors aligned (cast to the spec's dtype), the rest from `initial`; rows into `table`."""
    mapped: dict[str, torch.Tensor] = {}
    for key in target_keys:
        shape = tuple(target[key].shape)
        source_key = alignment.chosen.get(key)
        if source_key is None or key in alignment.reset:
            mapped[key] = initial[key]
            how = "reset" if key in alignment.reset else "initial"
            table.rows.append(MappedTensor(source_key, key, shape, _shape_of(state_dict, source_key), how))
            continue
        value = state_dict[source_key]
        if key in alignment.adapted:
            value = adapt_conv_in_channels(value, shape[1])
        mapped[key] = _converted(value, target[key].dtype)
        how = "adapted" if key in alignment.adapted else "copied"
        table.rows.append(MappedTensor(source_key, key, shape, tuple(state_dict[source_key].shape), how))
    return mapped


BATCH_COUNTER = ".num_batches_tracked"  # BatchNorm's step counter, a buffer older checkpoints do not have


def _shape_of(state_dict: Mapping[str, torch.Tensor], key: str | None) -> tuple[int, ...] | None:
    return None if key is None else tuple(state_dict[key].shape)


def _converted(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # a copy, contiguous and detached: safetensors refuses shared or strided storage
    return value.detach().to(dtype=dtype, copy=True).contiguous()


def _classifier_keys(target_keys: list[str]) -> set[str]:
    """The keys of the spec's last layer with weights (the classifier): the last key's module."""
    if not target_keys:
        return set()
    module = target_keys[-1].rsplit(".", 1)[0]
    return {k for k in target_keys if k.rsplit(".", 1)[0] == module}


# ---------------------------------------------------------------- writing


def save_weights(
    model_state: Mapping[str, torch.Tensor], report: Report, path: str | Path, *, force: bool = False, metadata: dict[str, str] | None = None
) -> Path:
    """Write mapped weights: `.safetensors` (tensors only, plus string metadata) or a convspec checkpoint (`.pt`, spec + state_dict).

    Written atomically; InputError for a path that cannot be written (checked before anything is built).
    """
    from .checkpoint import save_checkpoint, save_safetensors

    path = path_argument("path", path)
    if path.suffix.lower() == ".safetensors":
        return save_safetensors(model_state, path, force=force, metadata=metadata)
    from .builder import build_from_report
    from .checkpoint import load_weights

    model = build_from_report(report, seed=0)
    load_weights(model, dict(model_state), str(path))
    return save_checkpoint(model, report.spec, path, force=force, input_shape=report.input_shape)


__all__ = [
    "MappedTensor", "MappingTable", "WeightsError", "adapt_conv_in_channels", "map_weights", "read_source",
    "restore_order", "save_weights", "source_state_dict", "spec_tensors",
]  # fmt: skip
