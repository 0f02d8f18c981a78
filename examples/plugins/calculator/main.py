"""A tool: arithmetic the model can hand off (it is bad at it). Parsed, never eval()ed."""

from calc import CalcError, evaluate, formatted

from eldric import plugin


@plugin.tool(name="calculate", description="Evaluate an arithmetic expression exactly: "
             "+ - * / // % ** (or ^), parentheses, sqrt, sin, cos, tan, log, exp, pi, e.",
             parameters={"type": "object", "required": ["expression"], "properties": {
                 "expression": {"type": "string", "description": "e.g. (17 + 4) * 3.5"}}})
def calculate(expression: str) -> str:
    try:
        return formatted(evaluate(expression, plugin.valves.get("max_exponent", 1000)))
    except CalcError as exc:
        return f"error: {exc}"  # the model reads it and can try again


plugin.run()
