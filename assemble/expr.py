"""A small, safe expression evaluator for recipe values.

A recipe string that starts with ``$`` is an expression: ``"$ch[r] * 2"``, ``"$min(512, 32768 // r)"``,
``"$[2**i for i in range(3, log2(resolution) + 1)]"``. ``$$`` at the start escapes a literal ``$``.

This is *not* ``eval``: the expression is parsed with :mod:`ast` and walked here, allowing only literals,
names from the recipe's variables, arithmetic, comparisons, boolean logic, conditional expressions,
indexing and slicing, list/tuple/dict displays, comprehensions, and calls to a fixed set of pure
functions. Attribute access, lambdas, imports, assignments and every other construct are rejected, so a
recipe cannot run code.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any


class ExprError(ValueError):
    """A bad expression: syntax, a forbidden construct, an unknown name or a failing operation."""


def _log2(x: float) -> float | int:
    v = math.log2(x)
    return int(v) if float(v).is_integer() else v


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs, "min": min, "max": max, "round": round, "int": int, "float": float, "bool": bool,
    "str": str, "len": len, "sum": sum, "range": lambda *a: list(range(*a)), "list": list, "tuple": tuple,
    "sorted": sorted, "reversed": lambda x: list(reversed(x)), "zip": lambda *a: list(zip(*a)),
    "enumerate": lambda x, start=0: list(enumerate(x, start)),
    "log2": _log2, "sqrt": math.sqrt, "floor": math.floor, "ceil": math.ceil, "pow": pow,
}

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_CMP: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_MAX_POW = 4096  # keeps "2 ** 10**9" from hanging the evaluator
_MAX_REPEAT = 100_000  # keeps "'x' * 10**9" from exhausting memory


def is_expr(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$") and not value.startswith("$$")


def parse(text: str) -> ast.expr:
    """Parse an expression (without its leading ``$``)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ExprError(f"cannot parse expression '{text}': {err.msg}") from None
    except (ValueError, RecursionError, MemoryError) as err:  # null bytes, absurd nesting
        raise ExprError(f"cannot parse expression: {err}") from None
    return tree.body


def evaluate(text: str | ast.expr, names: Mapping[str, Any]) -> Any:
    """Evaluate an expression (text without ``$``, or a parsed tree) with the given names."""
    node = parse(text) if isinstance(text, str) else text
    try:
        return _Eval(names).visit(node)
    except RecursionError:
        raise ExprError("expression is nested too deeply") from None
    except ExprError:
        raise
    except (TypeError, ValueError, ArithmeticError, LookupError, MemoryError) as err:
        # Anything the walk above did not anticipate is still a bad expression, never a crash.
        raise ExprError(f"{type(err).__name__}: {err}") from None


def names_in(text: str) -> set[str]:
    """The free names an expression reads (for dependency ordering of variables)."""
    node = parse(text)
    bound: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.comprehension):
            bound |= {t.id for t in ast.walk(n.target) if isinstance(t, ast.Name)}
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id not in FUNCTIONS} - bound


class _Eval:
    def __init__(self, names: Mapping[str, Any]):
        self.scopes: list[Mapping[str, Any]] = [names]

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, f"v_{type(node).__name__}", None)
        if method is None:
            raise ExprError(f"'{type(node).__name__}' is not allowed in recipe expressions")
        return method(node)

    def v_Constant(self, n: ast.Constant) -> Any:
        if not isinstance(n.value, int | float | str | bool | type(None)):
            raise ExprError(f"constant {n.value!r} is not allowed")
        return n.value

    def v_Name(self, n: ast.Name) -> Any:
        for scope in reversed(self.scopes):
            if n.id in scope:
                return scope[n.id]
        if n.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[n.id]
        raise ExprError(f"undefined variable '{n.id}'")

    def v_BinOp(self, n: ast.BinOp) -> Any:
        op = _BINOPS.get(type(n.op))
        if op is None:
            raise ExprError(f"operator {type(n.op).__name__} is not allowed")
        a, b = self.visit(n.left), self.visit(n.right)
        if isinstance(n.op, ast.Pow) and isinstance(b, int | float) and abs(b) > _MAX_POW:
            raise ExprError(f"exponent {b} is too large")
        if isinstance(n.op, ast.Mult) and any(isinstance(v, str | list | tuple) for v in (a, b)) and any(
                isinstance(v, int) and v > _MAX_REPEAT for v in (a, b)):
            raise ExprError("repetition count is too large")
        try:
            return op(a, b)
        except (TypeError, ZeroDivisionError, ValueError, OverflowError) as err:
            raise ExprError(f"{err}") from None

    def v_UnaryOp(self, n: ast.UnaryOp) -> Any:
        op = _UNARY.get(type(n.op))
        if op is None:
            raise ExprError(f"operator {type(n.op).__name__} is not allowed")
        try:
            return op(self.visit(n.operand))
        except TypeError as err:
            raise ExprError(str(err)) from None

    def v_BoolOp(self, n: ast.BoolOp) -> Any:
        if isinstance(n.op, ast.And):
            result: Any = True
            for v in n.values:
                result = self.visit(v)
                if not result:
                    return result
            return result
        result = False
        for v in n.values:
            result = self.visit(v)
            if result:
                return result
        return result

    def v_Compare(self, n: ast.Compare) -> bool:
        left = self.visit(n.left)
        for op, comp in zip(n.ops, n.comparators):
            fn = _CMP.get(type(op))
            if fn is None:
                raise ExprError(f"comparison {type(op).__name__} is not allowed")
            right = self.visit(comp)
            try:
                ok = fn(left, right)
            except TypeError as err:
                raise ExprError(str(err)) from None
            if not ok:
                return False
            left = right
        return True

    def v_IfExp(self, n: ast.IfExp) -> Any:
        return self.visit(n.body) if self.visit(n.test) else self.visit(n.orelse)

    def v_Subscript(self, n: ast.Subscript) -> Any:
        container = self.visit(n.value)
        key = self.visit(n.slice)
        try:
            return container[key]
        except (KeyError, IndexError, TypeError) as err:
            raise ExprError(f"cannot index {_short(container)} with {key!r} ({type(err).__name__})") from None

    def v_Slice(self, n: ast.Slice) -> slice:
        part = lambda x: None if x is None else self.visit(x)  # noqa: E731
        return slice(part(n.lower), part(n.upper), part(n.step))

    def v_List(self, n: ast.List) -> list:
        return [self.visit(e) for e in n.elts]

    def v_Tuple(self, n: ast.Tuple) -> tuple:
        return tuple(self.visit(e) for e in n.elts)

    def v_Dict(self, n: ast.Dict) -> dict:
        if any(k is None for k in n.keys):
            raise ExprError("'**' in dict displays is not allowed")
        return {self.visit(k): self.visit(v) for k, v in zip(n.keys, n.values)}  # type: ignore[arg-type]

    def v_JoinedStr(self, n: ast.JoinedStr) -> str:
        """f-strings, for names built from loop variables: ``"$f'b{r}'"``."""
        return "".join(str(self.visit(v)) for v in n.values)

    def v_FormattedValue(self, n: ast.FormattedValue) -> str:
        value = self.visit(n.value)
        if n.conversion != -1:
            raise ExprError("conversions (!r, !s, !a) are not allowed in f-strings")
        spec = self.visit(n.format_spec) if n.format_spec is not None else ""
        if len(spec) > 20:
            raise ExprError("format spec is too long")
        try:
            return format(value, spec)
        except (TypeError, ValueError) as err:
            raise ExprError(f"cannot format {_short(value)} with '{spec}': {err}") from None

    def v_Attribute(self, n: ast.Attribute) -> Any:
        raise ExprError(f"attribute access ('.{n.attr}') is not allowed in recipe expressions")

    def v_Call(self, n: ast.Call) -> Any:
        if isinstance(n.func, ast.Attribute):
            raise ExprError(f"method calls ('.{n.func.attr}()') are not allowed in recipe expressions")
        if not isinstance(n.func, ast.Name) or n.func.id not in FUNCTIONS:
            name = n.func.id if isinstance(n.func, ast.Name) else type(n.func).__name__
            raise ExprError(f"function '{name}' is not allowed (allowed: {', '.join(sorted(FUNCTIONS))})")
        args = [self.visit(a) for a in n.args]
        kwargs = {k.arg: self.visit(k.value) for k in n.keywords if k.arg is not None}
        if any(k.arg is None for k in n.keywords) or any(isinstance(a, ast.Starred) for a in n.args):
            raise ExprError("'*' and '**' arguments are not allowed")
        try:
            if n.func.id == "range" and len(range(*args)) > 100_000:
                raise ExprError("range is too long")
            return FUNCTIONS[n.func.id](*args, **kwargs)
        except (TypeError, ValueError, OverflowError) as err:
            raise ExprError(f"{n.func.id}(): {err}") from None

    def _comprehension(self, generators: list[ast.comprehension], emit: Callable[[], None]) -> None:
        if len(generators) != 1:
            raise ExprError("only one 'for' per comprehension is allowed")
        gen = generators[0]
        if gen.is_async or not isinstance(gen.target, ast.Name | ast.Tuple):
            raise ExprError("unsupported comprehension target")
        items = self.visit(gen.iter)
        if not isinstance(items, list | tuple | range | dict):
            raise ExprError(f"cannot iterate over {_short(items)}")
        for item in items:
            scope: dict[str, Any] = {}
            if isinstance(gen.target, ast.Name):
                scope[gen.target.id] = item
            else:
                names = [t.id for t in gen.target.elts if isinstance(t, ast.Name)]
                if len(names) != len(gen.target.elts) or len(names) != len(item):
                    raise ExprError("cannot unpack comprehension item")
                scope.update(zip(names, item))
            self.scopes.append(scope)
            try:
                if all(self.visit(c) for c in gen.ifs):
                    emit()
            finally:
                self.scopes.pop()

    def v_ListComp(self, n: ast.ListComp) -> list:
        out: list = []
        self._comprehension(n.generators, lambda: out.append(self.visit(n.elt)))
        return out

    def v_DictComp(self, n: ast.DictComp) -> dict:
        out: dict = {}
        self._comprehension(n.generators, lambda: out.__setitem__(self.visit(n.key), self.visit(n.value)))
        return out


def _short(x: Any) -> str:
    r = repr(x)
    return r if len(r) < 60 else r[:57] + "..."
