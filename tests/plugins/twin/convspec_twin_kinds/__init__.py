"""Declares `pixel_shuffle` again, as another package: two installed packages claiming one kind."""

from convspec_demo_kinds import KINDS as DEMO

KINDS = [kind for kind in DEMO if kind.model.model_fields["type"].annotation.__args__[0] == "pixel_shuffle"]
