"""Safe arithmetic: the expression is parsed (ast) and only numbers, + - * / // % **,
parentheses and a few math functions are evaluated; anything else is refused. No eval."""

from __future__ import annotations

import ast
import math
import operator

MAX_LENGTH = 500  # characters of one expression
MAX_MAGNITUDE = 1e300  # a result beyond this is refused, not printed as 10,000 digits

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": math.sqrt, "abs": abs, "round": round, "sin": math.sin, "cos": math.cos,
              "tan": math.tan, "log": math.log, "log10": math.log10, "exp": math.exp,
              "floor": math.floor, "ceil": math.ceil}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


class CalcError(ValueError):
    pass


def evaluate(expression: str, max_exponent: int = 1000) -> int | float:
    if not isinstance(expression, str) or not expression.strip():
        raise CalcError("expression must be a non-empty string")
    if len(expression) > MAX_LENGTH:
        raise CalcError(f"expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise CalcError(f"not an arithmetic expression: {expression!r}") from None
    value = _eval(tree.body, max_exponent)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CalcError("not a number")
    if abs(value) > MAX_MAGNITUDE:
        raise CalcError("the result is too large")
    return value


def _eval(node: ast.AST, max_exp: int) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, max_exp))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, max_exp), _eval(node.right, max_exp)
        if isinstance(node.op, ast.Pow):
            if abs(right) > max_exp:
                raise CalcError(f"exponent {right} is larger than {max_exp}")
            if left and math.log10(abs(left)) * right > 300:  # before computing it
                raise CalcError("the result is too large")
        if isinstance(node.op, ast.Mult) and _too_big(left) and _too_big(right):
            raise CalcError("the result is too large")
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise CalcError("division by zero") from None
        except OverflowError:
            raise CalcError("the result is too large") from None
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS and not node.keywords and len(node.args) <= 2):
        args = [_eval(a, max_exp) for a in node.args]
        try:
            return _FUNCTIONS[node.func.id](*args)
        except (ValueError, TypeError, OverflowError) as exc:
            raise CalcError(f"{node.func.id}: {exc}") from None
    raise CalcError(f"not allowed in an expression: {ast.unparse(node)!r}")


def _too_big(x: int | float) -> bool:
    return abs(x) > 10 ** 150


def formatted(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)
