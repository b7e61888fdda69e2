"""The KubeRay CRDs in tests/data/kuberay-crds/ and what the API server checks with them:
the openAPIV3Schema (JSON schema), the fields a structural schema would prune, list-map
keys, and the CEL rules (x-kubernetes-validations), evaluated with cel-python."""

from __future__ import annotations

import functools
import json
from typing import Any

import celpy
import jsonschema
import yaml

from deployment import CRD_DIR, CRD_FILES


@functools.cache
def crd_schema(kind: str) -> dict:
    """The served v1 openAPIV3Schema of the CRD for `kind`."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 3 MB of CRDs
    crd = yaml.load((CRD_DIR / CRD_FILES[kind]).read_text(), Loader=loader)
    assert crd["spec"]["names"]["kind"] == kind
    versions = [v for v in crd["spec"]["versions"] if v["name"] == "v1" and v["served"]]
    assert len(versions) == 1, f"{kind}: no served v1 in the CRD"
    return versions[0]["schema"]["openAPIV3Schema"]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def unknown_fields(value: Any, schema: dict, path: str) -> list[str]:
    """What the API server would prune or reject beyond JSON schema: fields the structural
    schema does not declare, and duplicate keys in x-kubernetes-list-type map/set lists."""
    problems = []
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        open_object = schema.get("x-kubernetes-preserve-unknown-fields") or addl is True
        for k, v in value.items():
            if props is not None and k in props:
                problems += unknown_fields(v, props[k], _join(path, k))
            elif isinstance(addl, dict):
                problems += unknown_fields(v, addl, _join(path, k))
            elif open_object or path == "metadata" or schema.get("x-kubernetes-embedded-resource"):
                continue  # free-form, or ObjectMeta (validated against Kubernetes' schema)
            else:
                problems.append(f"{_join(path, k)}: unknown field (the API server would drop it)")
    elif isinstance(value, list):
        problems += _list_problems(value, schema, path)
    return problems


def _list_problems(value: list, schema: dict, path: str) -> list[str]:
    problems = []
    items = schema.get("items", {})
    for i, v in enumerate(value):
        problems += unknown_fields(v, items, f"{path}[{i}]")
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen = [tuple(v.get(k) for k in keys) for v in value if isinstance(v, dict)]
        dups = {s for s in seen if seen.count(s) > 1}
        if dups:
            problems.append(f"{path}: duplicate {keys} {sorted(map(str, dups))}")
    elif list_type == "set":
        seen = [json.dumps(v, sort_keys=True) for v in value]
        if len(set(seen)) != len(seen):
            problems.append(f"{path}: duplicate items in a set")
    return problems


_CEL = celpy.Environment()


@functools.cache
def _cel_program(expr: str) -> celpy.Runner:
    return _CEL.program(_CEL.compile(expr))


def cel_rule_holds(expr: str, value: Any) -> bool:
    """A CRD's CEL rule evaluated with `self` bound to `value` (a JSON value).

    Returns:
        Whether the rule holds; an error in evaluating it fails the check.
    """
    result = _cel_program(expr).evaluate({"self": celpy.json_to_cel(value)})
    if isinstance(result, celpy.CELEvalError):
        raise AssertionError(f"CEL rule {expr!r}: {result}")
    return bool(result)


def cel_violations(value: Any, schema: dict, path: str) -> list[str]:
    """The x-kubernetes-validations messages of the rules `value` breaks, recursively.
    Transition rules (they mention oldSelf) apply only on update and are skipped."""
    problems = []
    for rule in schema.get("x-kubernetes-validations", []):
        expr = rule["rule"]
        if "oldSelf" not in expr and not cel_rule_holds(expr, value):
            problems.append(f"{path}: {rule.get('message', expr)}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k, addl if isinstance(addl, dict) else None)
            if sub:
                problems += cel_violations(v, sub, _join(path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            problems += cel_violations(v, schema.get("items", {}), f"{path}[{i}]")
    return problems


def crd_problems(body: dict) -> list[str]:
    """Everything the API server would reject or drop in a RayCluster/RayJob/RayCronJob."""
    schema = crd_schema(body["kind"])
    validator = jsonschema.Draft7Validator(schema)
    problems = [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(body)
    ]
    problems += unknown_fields(body, schema, "")
    problems += cel_violations(body, schema, "")
    return problems
