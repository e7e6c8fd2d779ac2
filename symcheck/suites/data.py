"""Training data for a case's `train:` block: JSON/YAML beside the suite, or inline; checked against the
program's inputs, with errors at the data's own file:line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from symcheck.language.errors import SymcheckError, did_you_mean
from symcheck.language.inputs import InputSpec, value_array
from symcheck.suites.case import YamlPath
from symcheck.suites.positioned_yaml import YamlDoc


class DataReader:
    """Checks data sets against the case's inputs, with errors at the data's own file:line.

    The data is a mapping: `meta` (anything: labels, vocabulary, notes) plus either named sets
    (`train: {x: [...], y: [...]}, test: {...}`) or the arrays of one set, which is called `train`.
    """

    def __init__(self, doc: YamlDoc, prefix: YamlPath, filename: str) -> None:
        self.doc = doc
        self.prefix = prefix
        self.filename = filename

    def err(self, message: str, path: YamlPath = (), hint: str | None = None) -> SymcheckError:
        line = self.doc.line((*self.prefix, *path))
        return SymcheckError(message, filename=self.filename, line=line, hint=hint)

    def sets(
        self, raw: Any, inputs: Mapping[str, InputSpec], parameters: Sequence[str]
    ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
        example = '{"train": {"x": [[...], ...], "y": [...]}, "test": {...}}'
        if not isinstance(raw, dict):
            raise self.err("data must be a mapping of named arrays (or of named sets of them)", hint=example)
        meta = raw.get("meta") if isinstance(raw.get("meta"), dict) else {}
        keys = [k for k in raw if k != "meta"]
        named = [k for k in keys if isinstance(raw[k], dict)]
        arrays = [k for k in keys if not isinstance(raw[k], dict)]
        if not keys:
            raise self.err("the data has no arrays", hint=example)
        if named and arrays:
            raise self.err(
                f"data mixes named sets ({', '.join(map(str, named))}) "
                f"with arrays ({', '.join(map(str, arrays))})",
                (arrays[0],),
                hint="put every array inside a set, e.g. " + example,
            )
        raw_sets = {str(k): (raw[k], (k,)) for k in named} if named else {"train": (raw, ())}
        sets: dict[str, dict[str, np.ndarray]] = {}
        names: list[str] | None = None
        first = ""
        for set_name, (content, path) in raw_sets.items():
            sets[set_name] = self.one_set(set_name, content, path, inputs, parameters)
            these = sorted(sets[set_name])
            if names is None:
                names, first = these, set_name
            elif these != names:
                raise self.err(
                    f"set '{set_name}' gives {', '.join(these)} but set '{first}' gives {', '.join(names)}",
                    path,
                    hint="every set gives the same inputs",
                )
        return sets, dict(meta)

    def one_set(
        self,
        set_name: str,
        content: Mapping[Any, Any],
        path: YamlPath,
        inputs: Mapping[str, InputSpec],
        parameters: Sequence[str],
    ) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        steps: dict[str, int] = {}
        if not content:
            raise self.err(f"data set '{set_name}' is empty", path)
        for key, raw in content.items():
            name = str(key)
            where = (*path, key)
            if name in parameters:
                raise self.err(
                    f"'{name}' is a parameter: its starting values come from inputs, not data",
                    where,
                    hint="data gives the other inputs (features, labels) example by example",
                )
            if name not in inputs:
                raise self.err(
                    f"data set '{set_name}' gives '{name}', which is not an input",
                    where,
                    hint=did_you_mean(name, [n for n in inputs if n not in parameters])
                    or f"the data inputs are {', '.join(n for n in inputs if n not in parameters) or 'none'}",
                )
            spec = inputs[name]
            try:
                array = value_array(raw, spec.dtype)
            except SymcheckError as e:
                raise self.err(
                    f"data '{name}' in set '{set_name}': {e.message}", where, hint=e.hint
                ) from None
            shape = tuple(spec.shape or ())
            if array.shape[1:] == shape and array.ndim == len(shape) + 1:
                steps[name] = array.shape[0]
            elif (
                shape
                and array.ndim == len(shape)
                and array.shape[1:] == shape[1:]
                and array.shape[0] % shape[0] == 0
            ):
                steps[name] = array.shape[0] // shape[0]  # batches of shape[0] rows
            else:
                raise self.err(
                    f"data '{name}' in set '{set_name}' has shape {list(array.shape)}, "
                    f"but input '{name}' has shape {list(shape)}",
                    where,
                    hint=f"give [N, {', '.join(map(str, shape))}]".replace(", ]", "]")
                    + f": N examples, each of {name}'s shape, one per step",
                )
            out[name] = array
        counts = set(steps.values())
        if len(counts) > 1:
            shown = ", ".join(f"{n}: {c}" for n, c in steps.items())
            raise self.err(
                f"data set '{set_name}' has different numbers of steps per input ({shown})",
                path,
                hint="every input of a set gives the same number of examples",
            )
        return out
