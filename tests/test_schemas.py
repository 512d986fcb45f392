"""The JSON Schemas of what edgeface writes (manifest.json, bench results), checked with jsonschema, and the rule
that nothing committed or exported names a path of the machine that made it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from convert_helpers import converted

from edgeface.bench.schema import load_schema as load_bench_schema
from edgeface.manifest import SCHEMA_PATH

REPO = Path(__file__).resolve().parents[1]
HOST_PATH = re.compile(r"(?<![\w.])(/work/|/root/|/tmp/|/home/)")


def manifest_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def host_paths(value: object, where: str = "$") -> list[str]:
    """Every string in a JSON document that is an absolute path of some machine."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in host_paths(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in host_paths(v, f"{where}[{i}]")]
    return [f"{where}: {value}"] if isinstance(value, str) and HOST_PATH.search(value) else []


def test_converted_manifest_follows_its_schema_without_host_paths(tmp_path_factory, utkface_dir):
    out, manifest = converted(tmp_path_factory, utkface_dir)
    on_disk = json.loads((out / "manifest.json").read_text())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in manifest_validator().iter_errors(on_disk)]
    assert not errors, errors[:5]
    assert not host_paths(on_disk) and not on_disk["source"]["path"].startswith("/")
    assert on_disk["source"]["checkpoint"] == "tiny.pt"


def test_manifest_schema_refuses_paths_and_unknown_targets(tmp_path_factory, utkface_dir):
    _, manifest = converted(tmp_path_factory, utkface_dir)
    validator = manifest_validator()
    for broken in ({**manifest, "source": {"checkpoint": "/tmp/x/best.pt", "sha256": None}},
                   {**manifest, "artifacts": {"tflite": manifest["artifacts"]["onnx"]}},
                   {**manifest, "artifacts": {"onnx": {**manifest["artifacts"]["onnx"], "file": "../model.onnx"}}}):
        assert list(validator.iter_errors(broken))


def test_bench_schema_is_valid_and_committed_results_follow_it():
    schema = load_bench_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    results = [p for p in (REPO / "benchmarks/results").glob("*.json")
               if json.loads(p.read_text()).get("format") == "edgeface-bench/1"]
    assert results
    for path in results:
        errors = [e.message for e in validator.iter_errors(json.loads(path.read_text()))]
        assert not errors, f"{path.name}: {errors[:3]}"


@pytest.mark.parametrize("pattern", ["benchmarks/**/*.json", "benchmarks/**/*.md", "*.md", "edgeface/**/*.json"])
def test_no_host_path_in_committed_files(pattern):
    offenders = [f"{p.relative_to(REPO)}:{i + 1}" for p in REPO.glob(pattern)
                 for i, line in enumerate(p.read_text().splitlines()) if HOST_PATH.search(line)]
    assert not offenders, offenders[:10]
