"""Workflow templates: Jinja2 in its sandbox, with a work budget per render.

A template sees `inputs`, `steps` (`{id: {"output": ..., "status": ...}}`) and, in a map step's
input, `item` and `index`. The sandbox keeps it away from Python internals and from mutating what it
reads. The budget keeps one tenant's template from exhausting the memory or the CPU of a shared
worker: every operation that builds a value or repeats work (an operator, a filter, a call, a loop
iteration, an output) is charged *before* it runs, so `'x' * 10**9` or a nested loop is refused, not
attempted.
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import TemplateExpression
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from atom_core.errors import Invalid

SIZE_MAX = 100_000  # characters or items of a string or list built by an operator
RENDER_MAX = 200_000  # characters of a rendered template
INT_DIGITS_MAX = 1000  # digits of an integer built by arithmetic
WORK_MAX = 10_000_000  # units one render may spend: about a character handled, or a value stored
INLINE_WORK_MAX = 300_000  # units a render may spend on the caller's thread (a few ms); more goes to a worker
STEP_COST = 50  # units of one Python-level step: a template node run, a call, a filter
ITEM_COST = 10  # units of one value inside a container

# Read-only methods of the data types templates see. Everything else (str.format, str.ljust,
# int.to_bytes, ...) is refused: those build values whose size the budget could not know in advance.
_STR_METHODS = frozenset(
    {
        "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha", "isdigit",
        "islower", "isnumeric", "isspace", "istitle", "isupper", "lower", "lstrip", "partition",
        "removeprefix", "removesuffix", "rfind", "rindex", "rpartition", "rsplit", "rstrip", "split",
        "splitlines", "startswith", "strip", "swapcase", "title", "upper",
    }
)  # fmt: skip
_DATA_METHODS: tuple[tuple[type | tuple[type, ...], frozenset[str]], ...] = (
    (str, _STR_METHODS),
    (dict, frozenset({"get", "items", "keys", "values"})),
    ((list, tuple), frozenset({"count", "index"})),
    ((int, float), frozenset()),
)
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


class TemplateError(Invalid):
    """A template that does not compile or fails to render; the message is one short line, safe to show."""


class Overspent(Exception):
    """A render on the caller's thread used up its small budget: render it in a worker instead."""


# -------------------------------------------------------------- the budget


class _Render:
    """What one render may still spend, and the names of the values it reads (for error messages)."""

    def __init__(self, context: Mapping[str, Any], limit: int):
        self.left, self.inline = limit, limit < WORK_MAX
        self.paths = {id(value): name for name, value in context.items() if isinstance(value, dict | list)}

    def charge(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            if self.inline:
                raise Overspent()
            raise TemplateError("the template does too much work: loop over less data or simplify it")


_current: ContextVar[_Render | None] = ContextVar("atom_template_render", default=None)


def _state() -> _Render:
    state = _current.get()
    if state is None:  # Jinja folds constant expressions while compiling: leave them to run time
        raise nodes.Impossible()
    return state


def _charge(units: int) -> None:
    _state().charge(units)


def _size(value: Any) -> int:
    """About how much `str(value)` would weigh, counting a shared value once per reference.

    Stops counting once past what the render has left, so weighing a bomb is cheap too.
    """
    limit, total, todo = _state().left, 0, [value]
    while todo and total <= limit:
        item = todo.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, int):
            total += ITEM_COST + item.bit_length() // 3
        elif isinstance(item, range):
            total += ITEM_COST * len(item)
        elif isinstance(item, jinja2.Undefined):  # a leaf: `x | default(...)` must still see it
            total += ITEM_COST
        elif isinstance(item, Mapping):
            total += ITEM_COST
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, Collection):
            total += ITEM_COST
            todo.extend(item)
        else:
            total += ITEM_COST
    return total


def _check_length(length: int) -> None:
    if length > SIZE_MAX:
        raise TemplateError(f"result too large: {length} characters or items (the limit is {SIZE_MAX})")


def _check_value(length: int) -> None:
    """A value built by concatenation, a literal or a slice: no longer than a whole render may be."""
    if length > RENDER_MAX:
        raise TemplateError(f"result too large: {length} characters or items (the limit is {RENDER_MAX})")


# ------------------------------------------------------------ the operators


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _printf_growth(template: str, args: Any) -> int:
    """Characters that widths and precisions (`%10s`, `%.5f`, `%*d`) add to a printf-style format."""
    numbers = [abs(a) for a in (args if isinstance(args, tuple) else (args,)) if isinstance(a, int)]
    growth = 0
    for match in _PRINTF.finditer(template):
        for group in match.groups():
            growth += sum(numbers) if group == "*" else int(group or 0)
    return growth


def _binop_size(operator: str, left: Any, right: Any) -> int:
    """The size of `left <operator> right` before it is computed; raises when it is over a limit."""
    sequence = str | list | tuple
    if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if right * math.log10(abs(left)) > INT_DIGITS_MAX:
            raise TemplateError(f"result too large: more than {INT_DIGITS_MAX} digits")
    elif operator == "*":
        seq, times = (left, right) if isinstance(left, sequence) else (right, left)
        if isinstance(seq, sequence) and isinstance(times, int):
            _check_length(len(seq) * _count(times))
            return _size(seq) * _count(times)
    elif operator == "+" and isinstance(left, sequence) and isinstance(right, sequence):
        _check_length(len(left) + len(right))
        return _size(left) + _size(right)
    elif operator == "%" and isinstance(left, str):
        growth = _printf_growth(left, right)
        _check_length(len(left) + growth)
        return len(left) + growth + _size(right)
    return 0


# Comparisons (`==`, `<`, `in`, ...) walk both operands in C: `a == b` over two big lists, run in a loop,
# is a stall the loop's per-iteration charge cannot see. Each one is charged by the operands' sizes.
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gteq": operator.ge,
    "lt": operator.lt,
    "lteq": operator.le,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}


def _compare(left: Any, *chain: Any) -> bool:
    """`left op1 right1 op2 right2 ...` as Python chains it, each link charged before it runs."""
    result: Any = True
    for name, right in zip(chain[::2], chain[1::2], strict=True):
        _charge(STEP_COST + _size(left) + _size(right))
        result = _COMPARE[name](left, right)
        if not result:
            return result
        left = right
    return result


# ------------------------------------------------------------------ filters


def _width(value: Any) -> int:
    return len(value) if isinstance(value, str) else _count(value)


def _numbers_only(args: dict[str, Any]) -> int:
    if not isinstance(args["start"], int | float):  # summing lists copies them over and over
        raise TemplateError("sum adds numbers only")
    return 0


# Filters whose output can outgrow their input: what they add, from their bound arguments.
_GROWTH: dict[str, Callable[[dict[str, Any]], int]] = {
    "center": lambda a: _count(a["width"]),
    "indent": lambda a: (str(a["s"]).count("\n") + 1) * _width(a["width"]),
    "wordwrap": lambda a: (len(str(a["s"])) + 1) * len(a["wrapstring"] or "\n"),
    "replace": lambda a: (str(a["s"]).count(str(a["old"])) if a["old"] else len(str(a["s"])) + 1) * len(str(a["new"])),
    "join": lambda a: len(a["value"]) * len(str(a["d"])) if isinstance(a["value"], Collection) else 0,
    "batch": lambda a: _count(a["linecount"]) * (STEP_COST + _size(a["fill_with"])),
    "slice": lambda a: _count(a["slices"]) * (STEP_COST + _size(a["fill_with"])),
    "format": lambda a: _printf_growth(str(a["value"]), a["kwargs"] or a["args"]),
    "tojson": lambda a: _size(a["value"]) * _width(a["indent"]),
    "pprint": lambda a: 4 * _size(a["value"]),
    "escape": lambda a: 5 * _size(a["s"]),  # `&` becomes `&amp;`
    "e": lambda a: 5 * _size(a["s"]),
    "forceescape": lambda a: 5 * _size(a["value"]),
    "urlencode": lambda a: 2 * _size(a["value"]),
    "sum": _numbers_only,
}
# Filters that run Python code per item (a key, a test, an attribute lookup): about five times the work of
# walking the items in C, which is what the input's size charges.
_PER_ITEM = (
    "sort", "unique", "map", "select", "reject", "selectattr", "rejectattr", "groupby", "dictsort", "min", "max",
)  # fmt: skip
_GROWTH |= dict.fromkeys(_PER_ITEM, lambda a: 4 * _size(a["value"]))


def _guarded(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """The filter `fn`, charging its input, its arguments and its growth before it runs."""
    signature = inspect.signature(fn)
    first = 1 if hasattr(fn, "jinja_pass_arg") else 0  # the context or environment Jinja passes first
    growth = _GROWTH.get(name)

    @functools.wraps(fn)  # keeps `jinja_pass_arg`
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > first and isinstance(args[first], Iterator):  # weigh what a lazy filter produced
            args = (*args[:first], list(args[first]), *args[first + 1 :])
        _charge(STEP_COST + _size(args[first:]) + _size(kwargs))
        if growth:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            _charge(growth(bound.arguments))
        return fn(*args, **kwargs)

    return guarded


def _loop(iterable: Any, cost: int) -> Iterator[Any]:
    state = _state()  # before the generator starts: a loop is never folded at compile time
    return _charged_items(iterable, cost, state)


def _charged_items(iterable: Any, cost: int, state: _Render) -> Iterator[Any]:
    for item in iterable:
        state.charge(cost)
        yield item


def _concat(parts: list[Any]) -> str:
    _charge(_size(parts))
    text = "".join(map(str, parts))
    _check_value(len(text))
    return text


def _built(value: Any) -> Any:
    _charge(_size(value))
    if isinstance(value, str | list | tuple | dict):
        _check_value(len(value))
    return value


# ------------------------------------------------------------- the rewrite


def _filter(name: str, node: nodes.Expr, *args: Any) -> nodes.Filter:
    consts = [nodes.Const(arg, lineno=node.lineno) for arg in args]
    return nodes.Filter(node, name, consts, [], None, None, lineno=node.lineno)


def _cost(body: list[nodes.Node]) -> int:
    """What one run of `body` is charged: a step per node, a unit per character of literal text."""
    cost = STEP_COST
    for top in body:
        for node in (top, *top.find_all(nodes.Node)):
            cost += STEP_COST + (len(node.data) if isinstance(node, nodes.TemplateData) else 0)
    return cost


class _Metered(NodeTransformer):
    """Rewrites a parsed template so that repeated work and the values it builds are charged.

    The filters it inserts have names a template cannot write (`atom:...`).
    """

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        if node.recursive:  # `loop(...)` would iterate outside the metered iterable
            raise jinja2.TemplateSyntaxError("recursive loops are not supported", node.lineno)
        node.iter = _filter("atom:loop", node.iter, _cost([*node.body, *([node.test] if node.test else [])]))
        return node

    def visit_Macro(self, node: nodes.Macro | nodes.CallBlock) -> nodes.Node:
        self.generic_visit(node)
        charge = _filter("atom:charge", nodes.Const(_cost(node.body), lineno=node.lineno))
        node.body.insert(0, nodes.ExprStmt(charge, lineno=node.lineno))
        return node

    visit_CallBlock = visit_Macro  # a `{% call %}` body is a macro too

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:  # `a ~ b`
        self.generic_visit(node)
        return _filter("atom:concat", nodes.List(node.nodes, lineno=node.lineno))

    def visit_List(self, node: nodes.List | nodes.Dict) -> nodes.Filter:  # `[c, c]` doubles `c` at no cost
        self.generic_visit(node)
        return _filter("atom:built", node)

    visit_Dict = visit_List

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        self.generic_visit(node)
        return _filter("atom:built", node) if node.ctx == "load" else node  # not `{% for a, b in ... %}`

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:  # a slice copies what it takes
        self.generic_visit(node)
        return _filter("atom:built", node) if isinstance(node.arg, nodes.Slice) else node


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, with comparisons sent through `_compare` (the sandbox intercepts
    binary operators, not comparisons)."""

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("environment.compare(")
        self.visit(node.expr, frame)
        for operand in node.ops:
            self.write(f", {operand.op!r}, ")
            self.visit(operand.expr, frame)
        self.write(")")


def _metered(tree: nodes.Template) -> nodes.Template:
    return _Metered().visit(tree).set_environment(_ENV)


# ----------------------------------------------------------- the sandbox


class _Undefined(jinja2.StrictUndefined):
    """StrictUndefined that names the value it was looked up in: 'steps.research.output' has no attribute 'x'."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        state = _current.get()
        path = state.paths.get(id(self._undefined_obj)) if state else None
        if path is None or self._undefined_hint is not None:
            return super()._undefined_message
        kind = "attribute" if isinstance(self._undefined_name, str) else "element"
        return f"{path!r} has no {kind} {self._undefined_name!r}"


def _named(value: Any, parent: Any, suffix: str) -> Any:
    """Remember where a container was read from, for error messages about what it lacks."""
    state = _current.get()
    if state is not None and isinstance(value, dict | list) and id(parent) in state.paths:
        state.paths.setdefault(id(value), state.paths[id(parent)] + suffix)
    return value


class _Sandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    @staticmethod
    def compare(left: Any, *chain: Any) -> bool:
        return _compare(left, *chain)

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        _charge(STEP_COST + _binop_size(operator, left, right))
        result = self.binop_table[operator](left, right)
        if isinstance(result, int) and result.bit_length() * math.log10(2) > INT_DIGITS_MAX:
            raise TemplateError(f"result too large: more than {INT_DIGITS_MAX} digits")
        return result

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        receiver = obj.__self__ if inspect.isbuiltin(obj) else None  # `text.split()` reads all of `text`
        _charge(STEP_COST + _size((receiver, args, kwargs)))
        return super().call(context, obj, *args, **kwargs)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        for types, methods in _DATA_METHODS:
            if isinstance(obj, types):
                return attr in methods
        return True

    def wrap_str_format(self, value: Any) -> None:
        return None  # no str.format at all (`{:>999999999}`): is_safe_attribute refuses it

    def getattr(self, obj: Any, attribute: str) -> Any:
        _charge(STEP_COST)
        if isinstance(obj, dict) and attribute in obj:  # data first: a field named `items` is not dict.items
            return _named(obj[attribute], obj, f".{attribute}")
        return _named(super().getattr(obj, attribute), obj, f".{attribute}")

    def getitem(self, obj: Any, argument: Any) -> Any:
        _charge(STEP_COST + (len(argument) if isinstance(argument, str) else 0))  # a key is hashed
        return _named(super().getitem(obj, argument), obj, f"[{argument!r}]")


def _finalize(value: Any) -> Any:
    _charge(_size(value))  # what printing `value` will cost, before `str()` builds it
    return value


def _environment() -> _Sandbox:
    env = _Sandbox(undefined=_Undefined, autoescape=False, finalize=_finalize)
    del env.globals["lipsum"]  # builds paragraphs of text from a count
    del env.globals["namespace"]  # mutable state the budget cannot weigh
    del env.filters["urlize"]  # HTML, and it grows text by its arguments
    env.filters = {name: _guarded(name, fn) for name, fn in env.filters.items()}
    env.tests = {name: _guarded(name, fn) for name, fn in env.tests.items()}  # `x is in big`, `is eq`
    env.filters |= {"atom:loop": _loop, "atom:charge": _charge, "atom:concat": _concat, "atom:built": _built}
    return env


_ENV = _environment()


# ---------------------------------------------------------- compile & run


@contextmanager
def _translated() -> Iterator[None]:
    """Any failure of a template becomes one TemplateError with a one-line message."""
    try:
        yield
    except (TemplateError, Overspent):
        raise
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.message} (line {exc.lineno})") from None
    except jinja2.TemplateError as exc:  # undefined values, sandbox refusals
        raise TemplateError(exc.message or type(exc).__name__) from None
    except RecursionError:
        raise TemplateError("the template nests too deeply") from None
    except Exception as exc:  # a filter or an operator failed on this data: the template's error
        raise TemplateError((str(exc).splitlines() or [type(exc).__name__])[0][:300]) from None


@contextmanager
def _rendering(context: Mapping[str, Any], limit: int) -> Iterator[None]:
    token = _current.set(_Render(context, limit))
    try:
        yield
    finally:
        _current.reset(token)


def _parse_expression(text: str) -> nodes.Expr:
    parser = Parser(_ENV, text, state="variable")
    expression = parser.parse_expression()
    if not parser.stream.eos:
        raise jinja2.TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)
    return expression


@functools.lru_cache(maxsize=512)
def _template(text: str) -> jinja2.Template:
    return _ENV.from_string(_metered(_ENV.parse(text)))


@functools.lru_cache(maxsize=512)
def _expression(text: str) -> TemplateExpression:
    # What Environment.compile_expression does, with the metering rewrite in between.
    body = [nodes.Assign(nodes.Name("result", "store"), _parse_expression(text), lineno=1)]
    return TemplateExpression(_ENV.from_string(_metered(nodes.Template(body, lineno=1))), undefined_to_none=False)


def _joined(chunks: Iterator[str]) -> str:
    parts, length = [], 0
    for chunk in chunks:
        length += len(chunk)
        if length > RENDER_MAX:
            raise TemplateError(f"the rendered text is longer than {RENDER_MAX} characters")
        parts.append(chunk)
    return "".join(parts)


def render(template: str, context: Mapping[str, Any], *, limit: int = WORK_MAX) -> str:
    """The template rendered with `context` on this thread; TemplateError for anything that goes wrong.
    With a `limit` below WORK_MAX, Overspent when it is used up. Callers that must not stall use
    `rendering.render`, which sends all but small, loop-free work to a worker process."""
    with _translated():
        compiled = _template(template)
        with _rendering(context, limit):
            return _joined(compiled.generate(context))


def evaluate(expression: str, context: Mapping[str, Any], *, limit: int = WORK_MAX) -> Any:
    """The value of a Jinja expression (`steps.a.output.score > 3`); lazy results come back as lists.
    On this thread, like `render`."""
    with _translated():
        compiled = _expression(expression)
        with _rendering(context, limit):
            value = compiled(context)
            if isinstance(value, jinja2.Undefined):
                value._fail_with_undefined_error()
            return list(value) if isinstance(value, Iterator | range) else value


def check_template(text: str) -> None:
    """Raise TemplateError (with the line) if `text` does not compile."""
    with _translated():
        _template(text)


def check_expression(text: str) -> None:
    """Raise TemplateError (with the line) if `text` is not one valid expression."""
    with _translated():
        _expression(text)


# ---------------------------------------------------------------- analysis


@functools.lru_cache(maxsize=512)  # a spec's check reads each template's tree several times; never mutated
def _tree(text: str, expression: bool) -> nodes.Template:
    with _translated():
        if expression:
            return nodes.Template([nodes.Output([_parse_expression(text)])], lineno=1).set_environment(_ENV)
        return _ENV.parse(text)


# What a template may use and still render on the caller's thread: every node runs at most once (no loop,
# macro or call), and each does work linear in the data it reads, mostly in C. Anything else (and anything
# that overspends INLINE_WORK_MAX even so) renders in a worker process (`rendering`).
_INLINE_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Const, nodes.Name, nodes.Getattr, nodes.Getitem,
    nodes.Slice, nodes.CondExpr, nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos, nodes.Compare,
    nodes.Operand, nodes.Concat, nodes.Add, nodes.Sub, nodes.Div, nodes.FloorDiv, nodes.List, nodes.Tuple,
    nodes.Dict, nodes.Pair, nodes.Keyword, nodes.If, nodes.Assign, nodes.Test, nodes.Filter,
)  # fmt: skip
_INLINE_FILTERS = frozenset(
    {
        "abs", "capitalize", "count", "d", "default", "e", "escape", "first", "float", "int", "join", "last",
        "length", "list", "lower", "replace", "reverse", "round", "safe", "string", "title", "tojson", "trim",
        "truncate", "upper",
    }
)  # fmt: skip


@functools.lru_cache(maxsize=512)
def inline(text: str, *, expression: bool = False) -> bool:
    """Whether the template is small, loop-free work that may render on the caller's thread."""
    try:
        tree = _tree(text, expression)
    except TemplateError:
        return False  # its error comes from the worker, like any other outcome
    for node in (tree, *tree.find_all(nodes.Node)):
        if not isinstance(node, _INLINE_NODES):
            return False
        if isinstance(node, nodes.Filter) and node.name not in _INLINE_FILTERS:
            return False
    return True


def referenced_names(text: str, *, expression: bool = False) -> set[str]:
    """The names the template reads from its context (`inputs`, `steps`, ...), not counting built-ins."""
    return set(meta.find_undeclared_variables(_tree(text, expression)))


def referenced_keys(text: str, name: str, *, expression: bool = False) -> set[str]:
    """Keys the template reads from the context value `name` by constant lookups: `name.key`, `name['key']`.

    Best effort: a computed key (`name[var]`) or an alias made with `{% set %}` is not seen.
    """
    found: set[str] = set()
    for node in _tree(text, expression).find_all((nodes.Getattr, nodes.Getitem)):
        if not (isinstance(node.node, nodes.Name) and node.node.name == name):
            continue
        if isinstance(node, nodes.Getattr):
            found.add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found.add(node.arg.value)
    return found


def steps_read(text: str, *, expression: bool = False) -> frozenset[str] | None:
    """The steps a template reads by constant lookups (`steps.a`, `steps['a']`), or None
    when it also uses `steps` another way (`steps[name]`, `steps | tojson`) and so may
    read any step. The engine loads only these steps' outputs to render it."""
    tree = _tree(text, expression)
    found, looked_up = set(), set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not (isinstance(node.node, nodes.Name) and node.node.name == "steps"):
            continue
        if isinstance(node, nodes.Getattr):
            found.add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found.add(node.arg.value)
        else:
            continue
        looked_up.add(id(node.node))
    if any(name.name == "steps" and id(name) not in looked_up for name in tree.find_all(nodes.Name)):
        return None
    return frozenset(found)


def referenced_steps(text: str, *, expression: bool = False) -> set[str]:
    """Ids of the steps whose results the template reads (`steps.research.output`, `steps['research']`)."""
    return referenced_keys(text, "steps", expression=expression)
