"""What may name a layer: the rule, once, for specs, imported graphs and user kinds."""

from __future__ import annotations

import keyword
import re

from .errors import quote

NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # used with fullmatch: `$` would let "a\n" through

# Attributes of torch.nn.Module: a child of that name cannot be added (a test keeps this list complete).
MODULE_ATTRIBUTES = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double
    dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu
    load_state_dict modules mtia named_buffers named_children named_modules named_parameters parameters
    register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
    register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict to
    to_empty train training type xpu zero_grad""".split()
)


def layer_name_problem(name: str) -> str | None:
    """Why `name` cannot name a layer (a child module, a state_dict prefix, an ONNX node scope), or None.

    The rule, once: a Python identifier of ASCII letters, digits and underscores starting with a
    letter, not a Python keyword (torch's exporter writes names into generated Python code), not
    `input` (the list's own input) and not an attribute of nn.Module.
    """
    if not NAME_PATTERN.fullmatch(name):
        return f"{quote(name)} is not a valid layer name: use letters, digits and underscores, starting with a letter"
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword, which cannot name a module attribute; choose another name (e.g. {name}_)"
    if name == "input":
        return "'input' is reserved: it names the list's own input"
    if name in MODULE_ATTRIBUTES:
        return f"{name!r} is reserved: it is a method or attribute of torch.nn.Module; choose another name"
    return None

