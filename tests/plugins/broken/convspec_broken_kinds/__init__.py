"""A plugin declaring `conv`, which convspec has already."""

from typing import Literal

import convspec


class Conv(convspec.LayerBase):
    type: Literal["conv"]


CLASHING = convspec.UserKind(Conv, lambda layer, inputs: convspec.Figures(inputs[0]), "torch.nn:Identity")
