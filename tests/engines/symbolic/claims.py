"""Textbook claims the prover must prove, and wrong claims it must never prove.

Each entry: (expression, input shapes, wrt, claimed gradient). The right ones are Matrix Cookbook
identities and the backward formulas of common ops written the way a learner or a derivatives table
writes them; the wrong ones are the mistakes a hand derivation makes (a missing transpose, a factor,
a sign), each close to a right one.
"""

from __future__ import annotations

Shapes = dict[str, tuple[int, ...]]
Claim = tuple[str, Shapes, str, str]

SQUARE = {"A": (3, 3), "x": (3,)}
RECT = {"A": (3, 4), "G": (3, 5), "C": (2, 5), "X": (4, 2)}

RIGHT: list[Claim] = [
    # associativity of @
    ("sum(A.T @ G @ C.T * X)", RECT, "G", "A @ X @ C"),
    ("sum(A.T @ G @ C.T * X)", RECT, "G", "A @ (X @ C)"),
    ("sum(A.T @ (G @ C.T) * X)", RECT, "G", "(A @ X) @ C"),
    (
        "sum((A @ X @ B - C)^2)",
        {"A": (2, 3), "X": (3, 4), "B": (4, 2), "C": (2, 2)},
        "X",
        "2*A.T @ (A @ X @ B - C) @ B.T",
    ),
    # quadratic forms (Matrix Cookbook 81, 82)
    ("x @ A @ x", SQUARE, "x", "(A + A.T) @ x"),
    ("x @ A @ x", SQUARE, "x", "A @ x + A.T @ x"),
    ("x @ A @ x", SQUARE, "x", "A @ x + x @ A"),
    ("x @ A @ x", SQUARE, "A", "outer(x, x)"),
    # vector-matrix products: x @ B is B.T @ x
    ("sum((x @ B) * y)", {"x": (3,), "B": (3, 4), "y": (4,)}, "x", "B @ y"),
    ("sum((x @ B) * y)", {"x": (3,), "B": (3, 4), "y": (4,)}, "y", "B.T @ x"),
    ("sum((x @ B) * y)", {"x": (3,), "B": (3, 4), "y": (4,)}, "y", "x @ B"),
    # bilinear forms (Matrix Cookbook 70, 71)
    ("a @ X @ b", {"a": (3,), "X": (3, 4), "b": (4,)}, "X", "outer(a, b)"),
    ("a @ X.T @ b", {"a": (4,), "X": (3, 4), "b": (3,)}, "X", "outer(b, a)"),
    ("a @ X.T @ b", {"a": (4,), "X": (3, 4), "b": (3,)}, "X", "outer(a, b).T"),
    ("sum(outer(a, b) * M)", {"a": (3,), "b": (4,), "M": (3, 4)}, "a", "M @ b"),
    ("sum(outer(a, b) * M)", {"a": (3,), "b": (4,), "M": (3, 4)}, "b", "M.T @ a"),
    ("sum(outer(a, b) * M)", {"a": (3,), "b": (4,), "M": (3, 4)}, "b", "a @ M"),
    # Matrix Cookbook 77: d(b^T X^T X c)/dX = X (b c^T + c b^T)
    ("b @ X.T @ X @ c", {"b": (3,), "X": (4, 3), "c": (3,)}, "X", "X @ (outer(b, c) + outer(c, b))"),
    ("dot(a, b)", {"a": (3,), "b": (3,)}, "a", "b"),
    ("dot(W @ x, y)", {"W": (2, 3), "x": (3,), "y": (2,)}, "W", "outer(y, x)"),
    # traces (Matrix Cookbook 100, 103)
    ("trace(A @ X)", {"A": (3, 3), "X": (3, 3)}, "X", "A.T"),
    ("trace(X.T @ A)", {"A": (3, 3), "X": (3, 3)}, "X", "A"),
    ("trace(X @ X.T)", {"X": (3, 2)}, "X", "2*X"),
    ("trace(X @ A @ X.T)", {"A": (2, 2), "X": (3, 2)}, "X", "X @ (A + A.T)"),
    # elementwise functions: their textbook derivatives, in exp or in themselves
    ("sum(softplus(x))", {"x": (3,)}, "x", "sigmoid(x)"),
    ("sum(softplus(x))", {"x": (3,)}, "x", "exp(x)/(exp(x) + 1)"),
    ("sum(softplus(x))", {"x": (3,)}, "x", "1 - sigmoid(-x)"),
    ("sum(log(1 + exp(x)))", {"x": (3,)}, "x", "sigmoid(x)"),
    ("sum(sigmoid(x))", {"x": (3,)}, "x", "sigmoid(x)*(1 - sigmoid(x))"),
    ("sum(sigmoid(x))", {"x": (3,)}, "x", "exp(-x)/(1 + exp(-x))^2"),
    ("sum(tanh(x))", {"x": (3,)}, "x", "1 - tanh(x)^2"),
    ("sum(tanh(x))", {"x": (3,)}, "x", "4/(exp(x) + exp(-x))^2"),
    ("sum(2*sigmoid(2*x) - 1)", {"x": (3,)}, "x", "1 - tanh(x)^2"),
    ("sum(x*sigmoid(x))", {"x": (3,)}, "x", "sigmoid(x) + x*sigmoid(x)*(1 - sigmoid(x))"),
    ("sum(log(x)/log(10))", {"x": (3,)}, "x", "1/(x*log(10))"),
    ("sum(sqrt(x))", {"x": (3,)}, "x", "1/(2*sqrt(x))"),
    ("sum(sqrt(x))", {"x": (3,)}, "x", "x^(-1/2)/2"),
    ("sum(0.5*x^2)", {"x": (3,)}, "x", "0.5*2*x"),
    # reductions: a sum of deviations from the mean is 0
    ("sum(x - mean(x))", {"x": (4,)}, "x", "0*x"),
    ("sum((x - mean(x))^2)", {"x": (4,)}, "x", "2*(x - mean(x))"),
    ("mean(x^2)", {"x": (2, 3)}, "x", "x/3"),
    ("sum(sum(x, axis=1))", {"x": (2, 3)}, "x", "1 + 0*x"),
    ("sum(W @ x)", {"W": (2, 3), "x": (3,)}, "x", "sum(W, axis=0)"),
    # softmax and friends
    ("logsumexp(x)", {"x": (4,)}, "x", "softmax(x)"),
    ("logsumexp(x)", {"x": (4,)}, "x", "exp(x)/sum(exp(x))"),
    ("logsumexp(x)", {"x": (4,)}, "x", "exp(x - logsumexp(x))"),
    ("norm(x)", {"x": (3,)}, "x", "x/norm(x)"),
    ("norm(x)", {"x": (3,)}, "x", "x/sqrt(sum(x^2))"),
    # linear algebra (Matrix Cookbook 49, 57)
    ("logdet(X)", {"X": (3, 3)}, "X", "inv(X).T"),
    ("logdet(X)", {"X": (3, 3)}, "X", "inv(X.T)"),
    ("det(X)", {"X": (2, 2)}, "X", "det(X)*inv(X).T"),
]

WRONG: list[Claim] = [
    ("sum(A.T @ G @ C.T * X)", RECT, "G", "A @ X @ C + 0.001"),
    (
        "sum((A @ X @ B - C)^2)",
        {"A": (2, 3), "X": (3, 4), "B": (4, 2), "C": (2, 2)},
        "X",
        "A.T @ (A @ X @ B - C) @ B.T",
    ),
    ("x @ A @ x", SQUARE, "x", "2*A @ x"),
    ("x @ A @ x", SQUARE, "x", "A @ x"),
    ("x @ A @ x", SQUARE, "A", "2*outer(x, x)"),
    ("sum((x @ B) * y)", {"x": (3,), "B": (3, 4), "y": (4,)}, "y", "-(B.T @ x)"),
    ("a @ X @ b", {"a": (3,), "X": (3, 3), "b": (3,)}, "X", "outer(b, a)"),
    ("a @ X.T @ b", {"a": (3,), "X": (3, 3), "b": (3,)}, "X", "outer(a, b)"),
    ("sum(outer(a, b) * M)", {"a": (3,), "b": (3,), "M": (3, 3)}, "a", "M.T @ b"),
    ("b @ X.T @ X @ c", {"b": (3,), "X": (4, 3), "c": (3,)}, "X", "2*X @ outer(b, c)"),
    ("trace(A @ X)", {"A": (3, 3), "X": (3, 3)}, "X", "A"),
    ("trace(X @ A @ X.T)", {"A": (2, 2), "X": (3, 2)}, "X", "2*X @ A"),
    ("sum(softplus(x))", {"x": (3,)}, "x", "sigmoid(-x)"),
    ("sum(sigmoid(x))", {"x": (3,)}, "x", "sigmoid(x)*(1 + sigmoid(x))"),
    ("sum(tanh(x))", {"x": (3,)}, "x", "1 + tanh(x)^2"),
    ("sum(tanh(x))", {"x": (3,)}, "x", "2/(exp(x) + exp(-x))^2"),
    ("sum(log(x)/log(10))", {"x": (3,)}, "x", "1/(x*log(2))"),
    ("sum(log(x)/log(10))", {"x": (3,)}, "x", "1/(x*2.302585)"),
    ("sum(log(x)/log(10))", {"x": (3,)}, "x", "1/(x*2.3025850929940456)"),
    ("sum(sqrt(x))", {"x": (3,)}, "x", "1/sqrt(x)"),
    ("sum((x - mean(x))^2)", {"x": (4,)}, "x", "2*(x - mean(x)) + 1/4"),
    ("mean(x^2)", {"x": (2, 3)}, "x", "2*x"),
    ("logsumexp(x)", {"x": (4,)}, "x", "exp(x)"),
    ("norm(x)", {"x": (3,)}, "x", "x/norm(x)^2"),
    ("logdet(X)", {"X": (3, 3)}, "X", "inv(X)"),
    ("det(X)", {"X": (2, 2)}, "X", "det(X)*inv(X)"),
    ("sum(x*sigmoid(x))", {"x": (3,)}, "x", "sigmoid(x) + x*sigmoid(x)"),
]

# PyTorch's derivatives.yaml backward formulas, written in the language as VJPs in the cotangent v
# (`grad` there): a tensor output's J^T v, claimed the way the table writes it.
RIGHT_VJP: list[Claim] = [
    ("x*y", {"x": (3,), "y": (3,)}, "x", "v*y"),
    ("x/y", {"x": (3,), "y": (3,)}, "y", "-v*x/(y*y)"),
    ("x/y", {"x": (3,), "y": (3,)}, "y", "-v*(x/y)/y"),
    ("x^3", {"x": (3,)}, "x", "v*3*x^(3 - 1)"),
    ("exp(x)", {"x": (3,)}, "x", "v*exp(x)"),
    ("log(x)", {"x": (3,)}, "x", "v/x"),
    ("sqrt(x)", {"x": (3,)}, "x", "v/(2*sqrt(x))"),
    ("sigmoid(x)", {"x": (3,)}, "x", "v*sigmoid(x)*(1 - sigmoid(x))"),
    ("tanh(x)", {"x": (3,)}, "x", "v*(1 - tanh(x)^2)"),
    ("softplus(x)", {"x": (3,)}, "x", "v*sigmoid(x)"),
    ("silu(x)", {"x": (3,)}, "x", "v*sigmoid(x)*(1 + x*(1 - sigmoid(x)))"),
    ("atan2(y, x)", {"x": (3,), "y": (3,)}, "x", "-v*y/(x^2 + y^2)"),
    ("A @ B", {"A": (2, 3), "B": (3, 4)}, "A", "v @ B.T"),
    ("A @ B", {"A": (2, 3), "B": (3, 4)}, "B", "A.T @ v"),
    ("A @ x", {"A": (2, 3), "x": (3,)}, "A", "outer(v, x)"),
    ("A @ x", {"A": (2, 3), "x": (3,)}, "x", "A.T @ v"),
    ("x @ A", {"A": (3, 2), "x": (3,)}, "x", "A @ v"),
    ("b + A @ B", {"b": (2, 4), "A": (2, 3), "B": (3, 4)}, "B", "A.T @ v"),
    ("A.T", {"A": (2, 3)}, "A", "v.T"),
    ("outer(a, b)", {"a": (2,), "b": (3,)}, "a", "v @ b"),
    ("outer(a, b)", {"a": (2,), "b": (3,)}, "b", "v.T @ a"),
    ("sum(x, axis=1)", {"x": (2, 3)}, "x", "expand_dims(v, 1) + 0*x"),
    ("mean(x, axis=0)", {"x": (2, 3)}, "x", "v/2 + 0*x"),
    ("softmax(x)", {"x": (4,)}, "x", "softmax(x)*(v - sum(v*softmax(x)))"),
    ("log_softmax(x)", {"x": (4,)}, "x", "v - softmax(x)*sum(v)"),
    ("log_softmax(x)", {"x": (4,)}, "x", "v - exp(log_softmax(x))*sum(v)"),
    ("relu(x)", {"x": (3,)}, "x", "v*(x > 0)"),
    ("abs(x)", {"x": (3,)}, "x", "v*sign(x)"),
    ("clamp(x, min=-1, max=1)", {"x": (3,)}, "x", "v*(x >= -1)*(x <= 1)"),
    ("inv(A)", {"A": (2, 2)}, "A", "-inv(A).T @ v @ inv(A).T"),
    ("cumsum(x, axis=0)", {"x": (4,)}, "x", "flip(cumsum(flip(v, axis=0), axis=0), axis=0)"),
    ("x^2 + 2*x*y", {"x": (3,), "y": (3,)}, "x", "v*(2*x + 2*y)"),
]

WRONG_VJP: list[Claim] = [
    ("x/y", {"x": (3,), "y": (3,)}, "y", "v*x/(y*y)"),
    ("A @ B", {"A": (2, 3), "B": (3, 3)}, "B", "v.T @ A"),
    ("A @ B", {"A": (2, 3), "B": (3, 4)}, "A", "v @ B.T + 0.001"),
    ("A @ x", {"A": (2, 3), "x": (3,)}, "A", "outer(x, v).T*2"),
    ("softmax(x)", {"x": (4,)}, "x", "softmax(x)*v"),
    ("log_softmax(x)", {"x": (4,)}, "x", "v - softmax(x)"),
    ("tanh(x)", {"x": (3,)}, "x", "1 - tanh(x)^2"),
    ("inv(A)", {"A": (2, 2)}, "A", "-inv(A) @ v @ inv(A)"),
    ("relu(x)", {"x": (3,)}, "x", "v*(x >= 0) + (x == 0)"),
    ("cumsum(x, axis=0)", {"x": (4,)}, "x", "cumsum(v, axis=0)"),
]
