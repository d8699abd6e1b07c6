"""Kinds that load but whose code is wrong: a rule that raises, a module that disagrees with its rule, a builder that raises."""

from typing import Literal

from torch import nn

import convspec


class RaisingLayer(convspec.LayerBase):
    type: Literal["raising_rule"]


def raising_rule(layer, inputs):
    return convspec.Figures(inputs[0], params=1 // 0)


class LiarLayer(convspec.LayerBase):
    type: Literal["liar"]


def liar_rule(layer, inputs):
    return convspec.Figures(inputs[0])  # says the size is kept ...


def build_liar(layer, inputs):
    return nn.MaxPool2d(2)  # ... but halves it


class BadBuilderLayer(convspec.LayerBase):
    type: Literal["bad_builder"]


def build_bad(layer, inputs):
    raise RuntimeError("no module for you")


KINDS = [
    convspec.UserKind(RaisingLayer, raising_rule, build_liar),
    convspec.UserKind(LiarLayer, liar_rule, build_liar),
    convspec.UserKind(BadBuilderLayer, liar_rule, build_bad),
]
