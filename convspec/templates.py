"""Block templates: a top-level `blocks:` mapping of named, parameterised layers, placed with `type: use`.

    blocks:
      basic:
        params: {out: required, stride: 1}
        type: residual
        act: relu
        layers:
          - {name: conv1, type: conv, out: $out, kernel: 3, stride: $stride, padding: 1, norm: batch, act: relu}
          - {name: conv2, type: conv, out: $out, kernel: 3, padding: 1, norm: batch}
    layers:
      - {name: block1, type: use, block: basic, with: {out: 64}}

A template is one layer (any kind) plus `params`. `use` is replaced, when the
spec is loaded and before it is validated, by a copy of its template in which
every placeholder `$param` (or `${param}`) is replaced by the whole YAML value
given in `with:` (or the declared default); a string holding any other use of `$`
(`$out * 2`, `$(64 * width)`) is an expression, evaluated by `expressions` and
nothing else. The copy takes the `use` layer's `name` and `from`, so its module
and state_dict keys follow the instance.

Every node of the copy keeps a position: template text for what the template
wrote, the `with:` entry (or the `params:` default) for a substituted value. So
the validator and the shape checker, which only see the expanded spec, report a
mistake in a template at the template's line and a bad value at the `with:`
entry's line, under the instance's layer path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import LISTED_NAMES, CloseNames, LayerRef, Location, Problem, SpecError, did_you_mean, listing, quote, shorten
from .expressions import Expression, ExpressionError, is_expression
from .expressions import evaluate as evaluate_expression
from .expressions import parse as parse_expression
from .node_tree import Node, copy_tree, measure, plain_of, record_positions, tree_of, walk
from .source import MAX_DEPTH, MAX_NODES, Source, layer_label

# `$out`, or `${out}` (which YAML reads only in block style or quoted: `{` is a flow indicator)
PLACEHOLDER = re.compile(r"^\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})$")
MENTION = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")  # parameters named in a string, whole or not
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BLOCK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
REQUIRED = "required"  # a parameter's "default" that means: must be given in `with:`
USE_KEYS = ("type", "name", "from", "block", "with")
LAYER_LIST_KEYS = ("layers", "shortcut", "first")  # keys of a layer that hold layer lists


def _param(text: Any) -> str | None:
    """The parameter a placeholder names, or None."""
    match = PLACEHOLDER.match(text) if isinstance(text, str) else None
    return (match.group(1) or match.group(2)) if match else None


def _looks_like_placeholder(text: Any) -> bool:
    # no other value of the format holds a `$`, so any `$` is a (maybe mistyped) placeholder
    return isinstance(text, str) and "$" in text


def _is_use(node: Node) -> bool:
    return isinstance(node.value, dict) and isinstance(node.value.get("type"), Node) and node.value["type"].value == "use"


@dataclass
class _Template:
    name: str
    body: Node  # the layer, without `params`
    params: dict[str, Node]  # name -> default node (value REQUIRED when it must be given)
    valid: bool = True
    _hints: CloseNames | None = None

    @property
    def hints(self) -> CloseNames:
        """The parameters, for "did you mean" (made once: a block may have many)."""
        if self._hints is None:
            self._hints = CloseNames(self.params)
        return self._hints


@dataclass
class Expansion:
    """The spec with every `use` replaced, and what went wrong on the way."""

    data: dict
    problems: list[Problem] = field(default_factory=list)
    broken: set[tuple] = field(default_factory=set)  # paths of instances that could not be made


class _Expander:
    def __init__(self, data: dict, source: Source, factors: dict[str, Any] | None = None):
        self.data = data
        self.source = source
        self.factors = factors or {}  # the scale's factors, by the names expressions use
        self.problems: list[tuple[tuple | None, Problem]] = []  # (layer path to label, problem)
        self.broken: set[tuple] = set()
        self.templates: dict[str, _Template] = {}
        self.made = 0  # nodes created by instances (every node copied), against templates that explode
        self.leftovers: list[tuple] = []  # paths of placeholders outside any template
        self._seen: set[Problem] = set()
        self.root: Node | None = None  # the layers, as they are being expanded
        self._template_hints: CloseNames | None = None

    # ------------------------------------------------------------ reporting

    def _at(self, node: Node | None, value: bool = False) -> Location:
        pos = ((node.at or node.key_at) if value else (node.key_at or node.at)) if node is not None else None  # a key, as `Source.locate` prefers
        return self.source.at(pos)

    def _problem(self, message: str, node: Node | None, path: tuple | None, label: str | None = None, value: bool = False) -> None:
        problem = Problem(message, self._at(node, value), label)
        if problem not in self._seen:
            self._seen.add(problem)
            self.problems.append((path, problem))

    # ------------------------------------------------------------ templates

    def read_templates(self) -> None:
        raw = self.data.get("blocks")
        if not isinstance(raw, dict):
            return  # none, or not a mapping: the validator reports that ("`blocks` must be a mapping")
        root = tree_of(raw, self.source, ("blocks",))
        for name, node in root.value.items():
            label = LayerRef(f"blocks.{name}")
            if not isinstance(name, str) or not BLOCK_NAME.match(name):
                self._problem(f"{quote(name)} is not a valid block name: use letters, digits and underscores, starting with a letter", node, None, label)
                continue
            self.templates[name] = self._template(name, node, label)

    def _template(self, name: str, node: Node, label: str) -> _Template:
        """One `blocks:` entry read and checked (its layer, `params` and placeholders); problems recorded, and
        `valid` False when no instance can be made of it."""
        template = _Template(name, node, {})
        if not isinstance(node.value, dict):
            self._problem(f"block {quote(name)} must be a mapping: a layer (with `type`) and its `params`", node, None, label)
            template.valid = False
            return template
        keys = node.value
        params_node = keys.get("params")
        template.body = Node({k: v for k, v in keys.items() if k != "params"}, node.key_at, node.at)
        kind = keys.get("type")
        if kind is None:
            self._problem(f"block {quote(name)} needs `type`: a template is one layer (use `type: block` for several)", node, None, label)
            template.valid = False
        elif not isinstance(kind.value, str):
            self._problem(f"block {quote(name)}: `type` must be a layer kind, not a placeholder or a {type(kind.value).__name__}", kind, None, label)
            template.valid = False
        for key in ("name", "from"):
            if key in keys:
                where = "name each instance on its `use` layer" if key == "name" else "give `from` on the `use` layer"
                self._problem(f"block {quote(name)}: a template has no `{key}`; {where}", keys[key], None, label)
                template.valid = False
        if params_node is not None:
            self._read_params(template, params_node, label)
        used = self._placeholders_used(template, label)
        for param, default in template.params.items():
            if param not in used:
                # a mistake, but harmless to the instances: they are still made and checked
                self._problem(f"parameter {quote(param)} of block {quote(name)} is never used (no ${shorten(param)} in the template); drop it", default, None, label)
        return template

    def _read_params(self, template: _Template, params_node: Node, label: str) -> None:
        """The template's `params:` (name -> default) into `template.params`; a bad one marks it invalid (reported)."""
        name = template.name
        if not isinstance(params_node.value, dict):
            self._problem(f"`params` of block {quote(name)} must be a mapping, e.g. {{out: required, stride: 1}}", params_node, None, label)
            template.valid = False
            return
        for param, default in params_node.value.items():
            if not isinstance(param, str) or not PARAM_NAME.match(param):
                self._problem(f"{quote(param)} is not a valid parameter name: letters, digits and underscores", default, None, label)
                template.valid = False
                continue
            for _, inner in walk(default):
                if _looks_like_placeholder(inner.value):
                    self._problem(f"the default of parameter {quote(param)} cannot hold a placeholder ({quote(inner.value)}); give a plain value", inner, None, label)
                    template.valid = False
            template.params[param] = default

    def _placeholders_used(self, template: _Template, label: str) -> set[str]:
        """The parameters the template's placeholders and expressions name (a typo counting as the names it is close
        to); a placeholder naming no parameter, or standing for a `type`, marks the template invalid (reported)."""
        name = template.name
        used: set[str] = set()
        for path, inner in walk(template.body):
            if not _looks_like_placeholder(inner.value):
                continue
            used.update(MENTION.findall(inner.value))
            param = _param(inner.value)
            if param is None:  # an expression: `$out * 2`
                expression = self._parse(inner, None, label)
                if expression is None:
                    template.valid = False
                    continue
                for unknown in sorted(expression.params - template.params.keys()):
                    used.update(template.hints.close(unknown))
                    self._problem(
                        f"${shorten(unknown)} in {quote(inner.value)} is not a parameter of block {quote(name)}"
                        f"{template.hints.did_you_mean(unknown)}; declare it in `params` (declared: {listing(template.params) or 'none'})",
                        inner, None, label, value=True,
                    )
                    template.valid = False
                continue
            if len(path) >= 1 and path[-1] == "type" and path[-2:-1] != ("with",):
                self._problem(f"a layer's `type` cannot be a placeholder ({inner.value})", inner, None, label)
                template.valid = False
                continue
            if param not in template.params:
                used.update(template.hints.close(param))  # a typo of it
                declared = listing(template.params) or "none"
                self._problem(
                    f"${shorten(param)} is not a parameter of block {quote(name)}{template.hints.did_you_mean(param)}; "
                    f"declare it in `params` (declared: {declared})",
                    inner, None, label,
                )
                template.valid = False
        return used

    # ------------------------------------------------------------ instances

    def expand_layers(self) -> Node | None:
        if "layers" not in self.data:
            return None
        root = self.root = tree_of(self.data["layers"], self.source, ("layers",))
        self._expand_list(root, ("layers",), ())
        return root

    def _expand_list(self, node: Node, path: tuple, stack: tuple[str, ...]) -> None:
        if not isinstance(node.value, list):
            return
        for index, item in enumerate(node.value):
            item_path = path + (index,)
            inner_stack = stack
            while _is_use(item):
                made = self._instance(item, item_path, inner_stack)
                if made is None:
                    self.broken.add(item_path)
                    break
                self.source.templates.setdefault(item_path, made[1][-1])  # the block the spec names here
                item, inner_stack = made
                node.value[index] = item
            if item_path not in self.broken:
                self._expand_inside(item, item_path, inner_stack)

    def _expand_inside(self, layer: Node, path: tuple, stack: tuple[str, ...]) -> None:
        if isinstance(layer.value, dict):
            for key in LAYER_LIST_KEYS:
                if key in layer.value:
                    self._expand_list(layer.value[key], path + (key,), stack)

    def _instance(self, use: Node, path: tuple, stack: tuple[str, ...]) -> tuple[Node, tuple[str, ...]] | None:
        """The template's layer for one `use`, with the use's name and from; None (reported) if it cannot be made.

        `stack` names the blocks whose instances hold this one (a block that uses itself is refused).
        Raises SpecError when the instance would pass the node budget (`MAX_NODES`), as the loader does.
        """
        keys: dict[str, Node] = use.value
        keys_known = self._use_keys_known(keys, path)
        template = self._template_for(use, path, stack)
        if template is None:
            return None
        args = self._arguments(template, keys, path, keys_known)
        if args is None or not template.valid:
            return None  # a broken template's problems are reported once, at the template
        block = keys["block"]
        if len(stack) >= MAX_DEPTH:
            self._problem(f"blocks place blocks more than {MAX_DEPTH} deep (through {quote(template.name)}); a spec nests far less", block, path)
            return None
        env = self._environment(template, args, path)
        instance = None if env is None else self._substituted(template, env, block, path)
        if instance is None:
            return None
        instance.key_at, instance.at = use.key_at, use.at  # "this layer" is the `use` line
        instance.value = dict(instance.value)
        for key in ("name", "from"):
            if key in keys:
                instance.value[key] = keys[key]
        return instance, stack + (template.name,)

    def _use_keys_known(self, keys: dict[str, Node], path: tuple) -> bool:
        """False (each reported) when the `use` layer has a key a `use` layer does not take."""
        known = True
        for key, node in keys.items():
            if key not in USE_KEYS:
                hint = did_you_mean(str(key), USE_KEYS) or f"; a `use` layer has: {', '.join(USE_KEYS)}"
                self._problem(f"unknown key {quote(key)}{hint}", node, path)
                known = False
        return known

    def _template_for(self, use: Node, path: tuple, stack: tuple[str, ...]) -> _Template | None:
        """The template a `use` layer names in `block`, or None (reported): missing, unknown, or one of `stack`."""
        block = use.value.get("block")
        if block is None:
            self._problem("missing required key `block` (the name of a template in `blocks:`)", use, path)
            return None
        if not isinstance(block.value, str):
            self._problem(f"`block` must be the name of a template in `blocks:`, not {quote(plain_of(block))}", block, path)
            return None
        name = block.value
        template = self.templates.get(name)
        if template is None:
            if "blocks" in self.data and not self.templates:
                self._problem(f"no block named {quote(name)}: `blocks:` defines no usable template", block, path)
            elif not self.templates:
                self._problem(f"no block named {quote(name)}: the spec has no `blocks:` section to define it in", block, path)
            else:
                if self._template_hints is None:
                    self._template_hints = CloseNames(self.templates)
                hint = self._template_hints.did_you_mean(name) or f"; blocks: {listing(self.templates)}"
                self._problem(f"no block named {quote(name)}{hint}", block, path)
            return None
        if name in stack:
            chain = " -> ".join(shorten(n) for n in stack[stack.index(name):] + (name,))
            if len(stack) - stack.index(name) > LISTED_NAMES:
                chain = f"{shorten(name)} -> ... ({len(stack) - stack.index(name)} blocks) -> {shorten(name)}"
            self._problem(f"block {quote(name)} uses itself ({chain}); a template cannot contain itself", block, path)
            return None
        return template

    def _arguments(self, template: _Template, keys: dict[str, Node], path: tuple, keys_known: bool) -> dict[str, Node] | None:
        """The `with:` values by parameter, or None (reported) when `with` is no mapping, names an unknown parameter
        or leaves out a required one; with `keys_known` False the layer's key mistake is reported already, and a
        parameter it leaves out is not reported again."""
        name = template.name
        args_node = keys.get("with")
        args: dict[str, Node] = {}
        ok = keys_known
        if args_node is not None:
            if not isinstance(args_node.value, dict):
                self._problem("`with` must be a mapping of parameter values, e.g. {out: 64}", args_node, path)
                return None
            for param, value in args_node.value.items():
                if param not in template.params:
                    declared = listing(template.params) or "none"
                    hint = template.hints.did_you_mean(param) if isinstance(param, str) else ""
                    self._problem(
                        f"block {quote(name)} has no parameter {quote(param)}{hint}; its parameters: {declared}",
                        value, path,
                    )
                    ok = False
                else:
                    args[param] = value
        missing = [p for p, default in template.params.items() if p not in args and default.value == REQUIRED]
        if missing and ok:  # after an unknown key (`wiht:`), "missing" would only repeat it
            names = listing(f"`{shorten(p)}`" for p in missing)
            where = args_node if args_node is not None else keys["block"]
            self._problem(
                f"block {quote(name)} needs {names} (required parameter{'s' if len(missing) > 1 else ''}); give {'them' if len(missing) > 1 else 'it'} in `with:`",
                where, path,
            )
            ok = False
        return args if ok else None

    def _environment(self, template: _Template, args: dict[str, Node], path: tuple) -> dict[str, Node] | None:
        """Every parameter's value: its `with:` entry (an expression there computed) or its default; None (reported)
        when an expression fails."""
        env = {p: args.get(p, default) for p, default in template.params.items()}
        for param, value in env.items():  # `with: {out: $(64 * width)}` outside a template: its value first
            if is_expression(value.value):
                computed = self._evaluate(value, {}, path)
                if computed is None:
                    return None
                env[param] = computed
        return env

    def _substituted(self, template: _Template, env: dict[str, Node], block: Node, path: tuple) -> Node | None:
        """A copy of the template's layer with `env`'s values in place of its placeholders, measured before it is
        made; None (reported) when it would nest past `MAX_DEPTH` or an expression fails; raises SpecError past
        the node budget."""
        name = template.name
        # count what the instance would create before creating it: a big value placed by many
        # placeholders, or in many instances, is refused in moments, not after gigabytes of copies
        size, height = self._instance_measure(template.body, env)
        if self.made + size > MAX_NODES:
            # as the loader does at its node budget: stop here, with this one problem
            message = (
                f"the block templates expand to more than {MAX_NODES:,} nodes (this instance of {quote(name)} alone makes {size:,}); "
                "a spec is far smaller than that"
            )
            label = layer_label({"layers": plain_of(self.root)}, path)[1]  # the path is in the expanded tree
            raise SpecError([Problem(message, self._at(block), label)])
        if len(path) + height - 1 > MAX_DEPTH:
            self._problem(
                f"this instance of {quote(name)} would nest {len(path) + height - 1} levels deep, more than {MAX_DEPTH}; a spec nests far less",
                block, path,
            )
            return None
        self.made += size
        try:
            return self._substitute(template.body, env)
        except _Failed as failed:
            self._problem(failed.message, failed.node, path, value=True)
            return None

    def _instance_measure(self, node: Node, env: dict[str, Node]) -> tuple[int, int]:
        """(nodes, levels) of `node` with its placeholders replaced by `env`'s values, without making it."""
        param = _param(node.value)
        if param is not None:
            return measure(env[param])
        size, height = 1, 0
        children = node.value.values() if isinstance(node.value, dict) else node.value if isinstance(node.value, list) else ()
        for child in children:
            child_size, child_height = self._instance_measure(child, env)
            size, height = size + child_size, max(height, child_height)
        return size, height + 1

    # ------------------------------------------------------------ expressions

    def _parse(self, node: Node, path: tuple | None, label: str | None = None) -> Expression | None:
        """The expression `node` holds, or None (the problem recorded at its value)."""
        try:
            return parse_expression(node.value)
        except ExpressionError as err:
            self._problem(f"{quote(node.value)}: {err}", node, path, label, value=True)
            return None

    def _evaluate(self, node: Node, params: dict[str, Any], path: tuple | None) -> Node | None:
        """`node`'s expression computed (with `params`' plain values and the factors), or None (recorded)."""
        expression = self._parse(node, path)
        if expression is None:
            return None
        if expression.params - params.keys():
            name = sorted(expression.params - params.keys())[0]
            self._problem(f"{quote(node.value)}: ${shorten(name)} names a parameter, but parameters only exist inside a template in `blocks:`", node, path, value=True)
            return None
        try:
            result = evaluate_expression(expression, params, self.factors)
        except ExpressionError as err:
            self._problem(f"{quote(node.value)}: {err}", node, path, value=True)
            return None
        return Node(result, node.key_at, node.at)

    def _substitute(self, node: Node, env: dict[str, Node]) -> Node:
        if isinstance(node.value, str):
            param = _param(node.value)
            if param is not None:
                # the value as given, with the `with:` entry's (or the default's) positions;
                # every placeholder was checked against `params` when the template was read
                return copy_tree(env[param])
            if is_expression(node.value):  # checked when the template was read
                try:
                    params = {name: plain_of(env[name]) for name in parse_expression(node.value).params}
                    return Node(evaluate_expression(parse_expression(node.value), params, self.factors), node.key_at, node.at)
                except ExpressionError as err:
                    raise _Failed(f"{quote(node.value)}: {err}", node) from None
        if isinstance(node.value, dict):
            return Node({k: self._substitute(v, env) for k, v in node.value.items()}, node.key_at, node.at)
        if isinstance(node.value, list):
            return Node([self._substitute(v, env) for v in node.value], node.key_at, node.at)
        return Node(node.value, node.key_at, node.at)

    def leftover_placeholders(self, root: Node) -> None:
        stack = [(("layers",), root)]
        while stack:
            path, node = stack.pop()
            if path in self.broken:
                continue  # already reported at the failed `use`
            if is_expression(node.value):  # the JSON Schema takes expressions in templates and `with:` only, so does the loader
                self._problem(
                    f"{quote(node.value)}: expressions work in a template in `blocks:` and in the `with:` values of a `use` layer; "
                    "compute this one there, or write the number", node, path, value=True,
                )
                self.leftovers.append(path)
            elif _looks_like_placeholder(node.value):
                self._problem(
                    f"{quote(node.value)} looks like a placeholder, but placeholders only work inside a template in `blocks:`",
                    node, path,
                )
                self.leftovers.append(path)
            if isinstance(node.value, dict):
                stack += [(path + (k,), v) for k, v in node.value.items()]
            elif isinstance(node.value, list):
                stack += [(path + (i,), v) for i, v in enumerate(node.value)]


class _Failed(Exception):
    """An expression of an instance could not be computed: the message and the node it is at."""

    def __init__(self, message: str, node: Node):
        super().__init__(message)
        self.message, self.node = message, node


def _stand_in(layer: Any, index: Any) -> dict:
    """An identity layer in place of one that could not be made, so the rest can still be checked.

    It keeps the layer's name, or the default name it would have had, so `from` still finds it.
    """
    name = layer.get("name") if isinstance(layer, dict) else None
    kind = layer.get("type") if isinstance(layer, dict) else None
    if not (isinstance(name, str) and BLOCK_NAME.match(name)):
        name = f"{kind}_{index}" if isinstance(kind, str) and BLOCK_NAME.match(kind) and isinstance(index, int) else None
    return {"type": "identity", **({"name": name} if name else {})}


def has_templates(data: Any) -> bool:
    """True when the spec uses `blocks:`, `use` or placeholders, so it needs expanding."""
    if not isinstance(data, dict):
        return False
    if "blocks" in data:
        return True
    stack = [data.get("layers")]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "use":
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif _looks_like_placeholder(node):
            return True
    return False


def expand(data: dict, source: Source, factors: dict[str, Any] | None = None) -> Expansion:
    """The spec with every `use` replaced by its template's layer and every expression computed (with
    `factors`, the scale's factors by name); positions recorded in `source`."""
    if not has_templates(data):
        return Expansion(data)
    expander = _Expander(data, source, factors)
    expander.read_templates()
    root = expander.expand_layers()
    if root is None:
        return Expansion(data, [p for _, p in expander.problems])
    expander.leftover_placeholders(root)
    layers = plain_of(root)
    expanded = {**data, "layers": layers}
    # positions of the expanded layers replace those of the written ones
    for table in (source.key_positions, source.value_positions):
        for path in [p for p in table if p[:1] == ("layers",) and len(p) > 1]:
            del table[path]
    for index, item in enumerate(root.value if isinstance(root.value, list) else []):
        record_positions(item, ("layers", index), source)
    # label problems by the layer path of the instance, while the failed `use` layers are still in place
    problems = []
    for path, problem in expander.problems:
        if path is not None and problem.layer is None:
            problem = Problem(problem.message, problem.location, layer_label(expanded, path)[1])
        problems.append(problem)
    # a layer holding a stray placeholder is reported above; the validator need not say it again
    broken = set(expander.broken) | {layer_label(expanded, path)[0] for path in expander.leftovers} - {()}
    for path in sorted(broken, key=len, reverse=True):
        parent = expanded
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = _stand_in(parent[path[-1]], path[-1])
    return Expansion(expanded, problems, broken)
