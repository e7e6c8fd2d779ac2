"""Every op of the catalogue has its entry in every engine's rule table; a missing one fails here.

Adding an op is one catalogue entry plus one entry in each table below (docs/architecture.md).
"""

from __future__ import annotations

import pytest

from symcheck.engines.autograd.rules import TABLE as AUTOGRAD
from symcheck.engines.numeric.rules import FORWARD as NUMERIC
from symcheck.engines.symbolic.rules import RULES as SYMBOLIC
from symcheck.engines.torch.rules import TABLE as TORCH
from symcheck.language.catalogue import OPS, OpKind

ELEMENTWISE = sorted(name for name, op in OPS.items() if op.kind is OpKind.ELEMENTWISE)
# Lowered by the torch engine's Lowerer itself (a constant needs the engine's dtype and device).
TORCH_LOWERER = {"eye", "pi", "e"}


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_engine_has_a_rule(op: str) -> None:
    assert op in SYMBOLIC, f"symbolic: no row for {op} in symcheck/engines/symbolic/rules.py"
    assert op in AUTOGRAD, f"autograd: no rule for {op} in symcheck/engines/autograd/rules.py"
    assert op in TORCH or op in TORCH_LOWERER, f"torch: no entry for {op} in symcheck/engines/torch/rules.py"
    assert op in NUMERIC, f"numeric: no entry for {op} in symcheck/engines/numeric/rules.py"


@pytest.mark.parametrize("op", ELEMENTWISE)
def test_every_elementwise_op_has_a_symbolic_meaning(op: str) -> None:
    rule = SYMBOLIC[op]
    keyworded = ("clamp", "gelu", "leaky_relu", "elu", "hardtanh")  # functions.WITH_KEYWORDS, clamp
    assert rule.closed is not None or op in keyworded, f"{op}: no closed-form meaning"


def test_the_tables_name_only_catalogue_ops() -> None:
    """A row for an op that is not in the catalogue is dead (or a typo of a real one)."""
    assert set(SYMBOLIC) <= set(OPS)
    assert set(NUMERIC) <= set(OPS)
    assert set(TORCH) <= set(OPS)
    # autograd also has adjoint helpers as primitives (index_add, the adjoint of take)
    assert set(AUTOGRAD) - set(OPS) == {"index_add"}


def test_a_missing_autograd_rule_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    from symcheck.engines.autograd import engine, tensor

    monkeypatch.delitem(AUTOGRAD, "sin")
    with pytest.raises(NotImplementedError, match="autograd has no rule for 'sin'"):
        engine._rule("sin")
    monkeypatch.delitem(tensor.PRIMITIVES, "add")
    with pytest.raises(NotImplementedError, match="autograd has no rule for 'add'"):
        tensor.Tensor(1.0) + 1.0
