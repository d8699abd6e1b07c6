"""Editor support: the committed convspec.schema.json is the format's schema, and every example spec points at it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

import convspec

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "convspec.schema.json"
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
HEADER = "# yaml-language-server: $schema=../convspec.schema.json"
REGENERATE = "regenerate it: convspec schema -o convspec.schema.json --force"


def test_committed_schema_is_the_current_schema():
    assert SCHEMA_FILE.exists(), f"convspec.schema.json is missing; {REGENERATE}"
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert json.loads(committed) == convspec.json_schema(), f"convspec.schema.json is out of date; {REGENERATE}"
    assert committed == json.dumps(convspec.json_schema(), indent=2) + "\n", f"not as `convspec schema` writes it; {REGENERATE}"


def test_committed_schema_is_a_valid_schema():
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_names_the_schema_on_its_first_line(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == HEADER, f"{path.name} should start with: {HEADER}"
    assert (path.parent / "../convspec.schema.json").resolve() == SCHEMA_FILE


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_validates_against_the_committed_schema(path):
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    errors = sorted(validator.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8"))), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:5])


def test_the_schema_catches_what_editors_should_flag():
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    typo = {"input": {"channels": 3, "size": [8, 8]}, "layers": [{"type": "conv", "out_channels": 4, "kernel_sise": 3}]}
    assert list(validator.iter_errors(typo))
    aliases = {"input": {"channels": 3, "size": [8, 8]}, "layers": [{"type": "conv", "out": 4, "kernel": 3}]}
    assert not list(validator.iter_errors(aliases))
