"""The published hook schemas and ingest agree: Python's `jsonschema` package (draft 2020-12, not
hookline's code) validates every event's example and a corpus of invalid hooks made from each
schema (a wrong type, a value outside an enum, a string too long or too short, a number out of
range, a required field missing), and a real `hookline serve` ingests the same hooks. Every valid
hook is accepted by both; every invalid one refused by both, ingest naming the same field as the
outside validator. Runs over the built-in catalogue and an operator's file."""

import copy
import json
import os
import sys
import tempfile

from jsonschema import Draft202012Validator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hookline_proc import Hookline  # noqa: E402

OPERATOR_CATALOGUE = {"products": [{"productName": "Push", "events": [{
    "event": "OPENED",
    "description": "A push notification was opened.",
    "hookSchema": {
        "type": "object",
        "required": ["token", "platform"],
        "properties": {
            "token": {"type": "string", "minLength": 4, "maxLength": 64},
            "platform": {"type": "string", "enum": ["IOS", "ANDROID"]},
            "badge": {"type": "integer", "minimum": 0, "maximum": 99},
            "score": {"type": "number", "maximum": 1.5},
            "muted": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}},
            "device": {"type": "object", "required": ["os"],
                       "properties": {"os": {"type": "string", "const": "mobile"}}},
        },
    },
    "example": {"hookId": "20240429205809PuShOpEnE00", "token": "abcd-1234", "platform": "IOS",
                "badge": 3, "score": 0.5, "muted": False, "tags": ["a"], "device": {"os": "mobile"}},
}]}]}

# Candidates for a value of the wrong JSON type: the first one the field's types refuse is used.
WRONG_VALUES = ["text", 12345, 1.5, True, {"o": 1}, [1]]


def json_type(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {str: "string", float: "number", dict: "object", list: "array"}[type(value)]


def wrong_value(types):
    for value in WRONG_VALUES:
        t = json_type(value)
        if t not in types and not (t == "integer" and "number" in types):
            return value
    return None


def types_of(schema):
    t = schema.get("type")
    if t is None:
        return []
    return [t] if isinstance(t, str) else list(t)


def invalid_cases(schema, example, path, aliases=None):
    """(hook fragment, path of the offending field) pairs, each breaking one rule of `schema`.
    An alias's cases carry the value under the alias instead of the delivered name."""
    aliases = aliases or {}
    cases = []
    props = schema.get("properties", {})
    for name in schema.get("required", []):
        if name in example:
            broken = copy.deepcopy(example)
            del broken[name]
            cases.append((broken, f"{path}.{name}"))
    for name, sub in props.items():
        if name == "hookId":
            continue
        at = f"{path}.{name}"
        base, value = example, example.get(name)
        if name in aliases:
            value = example.get(aliases[name])
            base = {k: v for k, v in example.items() if k != aliases[name]}
        types = [t for t in types_of(sub) if t != "null"]
        wrong = wrong_value(types)
        if types and wrong is not None:
            cases.append(({**base, name: wrong}, at))
        if "enum" in sub:
            cases.append(({**base, name: "NOT_ONE_OF_THEM"}, at))
        if "maxLength" in sub:
            cases.append(({**base, name: "x" * (sub["maxLength"] + 1)}, at))
        if sub.get("minLength", 0) > 0:
            cases.append(({**base, name: "x" * (sub["minLength"] - 1)}, at))
        if "maximum" in sub and sub["maximum"] < 2**63 - 1:
            cases.append(({**base, name: sub["maximum"] + 1}, at))
        if "minimum" in sub and sub["minimum"] > -2**63:
            cases.append(({**base, name: sub["minimum"] - 1}, at))
        if "object" in types and isinstance(value, dict):
            for inner, inner_at in invalid_cases(sub, value, at):
                cases.append(({**base, name: inner}, inner_at))
        items = sub.get("items")
        if "array" in types and isinstance(value, list) and value and items is not None:
            item_schema = {"type": "object", "properties": {"item": items}}
            for inner, inner_at in invalid_cases(item_schema, {"item": value[0]}, f"{at}[0]"):
                if "item" in inner:
                    cases.append(({**base, name: [inner["item"], *value[1:]]},
                                  inner_at.replace(f"{at}[0].item", f"{at}[0]")))
    return cases


def nulled_optionals(schema, example):
    """The example with each optional top-level field null: valid for both (null means absent)."""
    required = set(schema.get("required", []))
    return [{**example, name: None} for name in schema.get("properties", {})
            if name not in required and name != "hookId" and name in example]


def schema_path(error):
    """The outside validator's path of an error, written like ingest's (`hooks[0].a.b[1]`)."""
    out = "hooks[0]"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    # A missing required property is reported at its object; name the property, like ingest.
    if error.validator == "required":
        missing = error.message.split("'")[1]
        out += f".{missing}"
    return out


def main():
    results = []

    def check(name, ok, detail=""):
        results.append(ok)
        if not ok:
            print(f"FAILED {name}: {detail}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "push.json")
        with open(path, "w") as f:
            json.dump(OPERATOR_CATALOGUE, f)
        with Hookline("--catalogue", path) as srv:
            app_key, secret = srv.create_app_key("schemas")
            catalogue = srv.expect(200, "GET", "/v1/catalogue", secret=secret)["catalogue"]
            events = 0
            for product in catalogue["products"]:
                if not product["ingestible"]:
                    # Produced by hookline (operational events), never ingested: the published
                    # schema is valid and its example, the shape hookline sends, passes it.
                    for event in product["events"]:
                        name = f"{product['productName']} {event['event']}"
                        Draft202012Validator.check_schema(event["hookSchema"])
                        errors = list(Draft202012Validator(event["hookSchema"]).iter_errors(
                            event["example"]))
                        check(f"{name}: jsonschema accepts its example", not errors,
                              [e.message for e in errors])
                    continue
                for event in product["events"]:
                    events += 1
                    name = f"{product['productName']} {event['event']}"
                    schema = event["hookSchema"]
                    Draft202012Validator.check_schema(schema)
                    validator = Draft202012Validator(schema)

                    def ingest(hook):
                        return srv.call("POST", f"/v1/appkeys/{app_key}/events", secret=secret, body={
                            "productName": product["productName"], "event": event["event"],
                            "hooks": [hook]})

                    example = dict(event["example"])
                    example.pop("hookId", None)
                    for valid in [event["example"], example, *nulled_optionals(schema, example)]:
                        errors = list(validator.iter_errors(valid))
                        check(f"{name}: jsonschema accepts {valid}", not errors,
                              [e.message for e in errors])
                        status, body = ingest(valid)
                        check(f"{name}: ingest accepts {valid}", status == 202, body)
                    for hook, field in invalid_cases(schema, example, "hooks[0]", event["aliases"]):
                        errors = list(validator.iter_errors(hook))
                        paths = [schema_path(e) for e in errors]
                        check(f"{name}: jsonschema refuses {hook} at {field}", field in paths,
                              paths)
                        status, body = ingest(hook)
                        message = (body or {}).get("header", {}).get("resultMessage", "")
                        check(f"{name}: ingest refuses {hook} naming {field}",
                              status == 400 and message.startswith(field + ":"),
                              f"{status} {message}")
            check("the catalogue has the built-in and the operator's events", events >= 9, events)
    failed = results.count(False)
    print(f"catalogue schemas: {len(results) - failed} checks passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
