"""The suite format as a JSON Schema, for editors (`symcheck schema`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from symcheck.suites.models import DEFAULT_KEYS, NO_DEFAULT_KEYS, CaseModel, InputModel, listify, textify

# ---------------------------------------------------------------- JSON Schema, for editors

SCHEMA_FILE = Path(__file__).with_name("suite.schema.json")  # shipped; `symcheck schema --output` writes it


def suite_json_schema() -> dict[str, Any]:
    """The suite format as a JSON Schema (draft 2020-12), generated from the models that validate
    suites (CaseModel and those under it) plus what the loader accepts around them: the top level,
    `defaults`, a bare number or list as an input's value."""
    from pydantic import TypeAdapter
    from pydantic.json_schema import GenerateJsonSchema

    class Generate(GenerateJsonSchema):
        # The before-validators widen what a key accepts; the schema shows the wider input.
        def function_before_schema(self, schema: Any) -> Any:
            fn = schema["function"].get("function")
            if fn is listify:  # `wrt: x` stands for `wrt: [x]`
                inner = schema["schema"]
                return {"anyOf": [self.generate_inner(inner["items_schema"]), self.generate_inner(inner)]}
            if fn is textify:  # `expr: 3`
                return {"anyOf": [self.generate_inner(schema["schema"]), {"type": "number"}]}
            return super().function_before_schema(schema)

    generated = TypeAdapter(list[CaseModel]).json_schema(schema_generator=Generate)
    defs = generated["$defs"]
    case = defs[CaseModel.__name__]
    case["properties"]["inputs"]["additionalProperties"] = {
        "anyOf": [
            {"$ref": f"#/$defs/{InputModel.__name__}"},
            {"type": ["number", "array"], "description": "the input's value (a number or nested list)"},
        ]
    }
    defs["Defaults"] = {
        "type": "object",
        "title": "Defaults",
        "description": "defaults for every case: any case key except " + ", ".join(NO_DEFAULT_KEYS),
        "additionalProperties": False,
        "properties": {k: v for k, v in case["properties"].items() if k in DEFAULT_KEYS},
    }
    cases = {"type": "array", "minItems": 1, "items": {"$ref": f"#/$defs/{CaseModel.__name__}"}}
    top = {
        "suite": {"type": "string", "minLength": 1, "description": "the suite's name (default: the file's)"},
        "defaults": {"$ref": "#/$defs/Defaults"},
        "cases": cases,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "symcheck suite",
        "description": "A symcheck suite (symcheck verify; pytest for *.symcheck.yaml): "
        "`cases:` (with optional `suite:` and `defaults:`), or a bare list of cases.",
        # Object keywords apply to a mapping, array keywords to a list: either form, precise errors.
        "type": ["object", "array"],
        "properties": top,
        "required": ["cases"],
        "additionalProperties": False,
        "items": cases["items"],
        "minItems": 1,
        "$defs": defs,
    }


def suite_json_schema_text() -> str:
    """The schema as `symcheck schema` prints it and symcheck/suites/suite.schema.json holds it."""
    return json.dumps(suite_json_schema(), indent=2, ensure_ascii=False) + "\n"
