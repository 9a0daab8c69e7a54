"""The sandboxed template layer: rendering, error messages, the sandbox, the work budget, AST analysis."""

from __future__ import annotations

import time

import pytest

from atom_core.errors import Invalid
from atom_core.workflows import templates
from atom_core.workflows.templates import TemplateError, evaluate, render

CONTEXT = {
    "inputs": {"topic": "cats", "n": 3, "tags": "a, b ,c", "numbers": [3, 1, 2]},
    "steps": {
        "research": {"output": {"facts": ["fur", "naps"], "items": 7, "score": 4.5}, "status": "succeeded"},
        "write": {"output": "A short text.", "status": "succeeded"},
    },
}


def failure(template: str, context: dict | None = None, *, expression: bool = False) -> str:
    with pytest.raises(TemplateError) as caught:
        (evaluate if expression else render)(template, CONTEXT if context is None else context)
    return caught.value.message


# ------------------------------------------------------------------ rendering


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Collect facts about {{ inputs.topic }}", "Collect facts about cats"),
        ("{{ steps.research.output.facts | join(', ') }}", "fur, naps"),
        ("{{ steps['research'].output['score'] }}", "4.5"),
        ("{% for f in steps.research.output.facts %}{{ loop.index }}.{{ f }} {% endfor %}", "1.fur 2.naps "),
        ("{{ steps.research.output.items }}", "7"),  # a field named like a dict method is the field
        ("{{ steps.write.output | upper }} {{ steps.write.status }}", "A SHORT TEXT. succeeded"),
        ("{{ inputs.tags.split(',') | map('trim') | join('|') }}", "a|b|c"),
        ("{{ inputs.n * 2 }} {{ inputs.n ** 2 }} {{ 7 % 3 }} {{ 'a' ~ inputs.n }} {{ [1] + [2] }}", "6 9 1 a3 [1, 2]"),
        ("{{ steps.research.output | tojson }}", '{"facts": ["fur", "naps"], "items": 7, "score": 4.5}'),
        ("{% set x %}{% for i in range(3) %}{{ i }}{% endfor %}{% endset %}{{ x }}", "012"),
        ("{% macro twice(s) %}{{ s }}{{ s }}{% endmacro %}{{ twice('ab') }}", "abab"),
        ("{{ inputs.numbers | sort | list }} {{ inputs.numbers | sum }}", "[1, 2, 3] 6"),
        ("{{ '%05.1f' % 3.14159 }} {{ '%s-%s' | format(1, 2) }}", "003.1 1-2"),
        ("{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}", "a=1"),
        ("{% macro box() %}[{{ caller() }}]{% endmacro %}{% call box() %}x{% endcall %}", "[x]"),
        ("{% for f in [1, 2, 3] if f > 1 %}{{ f }}{{ ',' if not loop.last }}{% else %}none{% endfor %}", "2,3"),
        ("{% for f in [] %}{{ f }}{% else %}none{% endfor %}{% filter upper %}ok{% endfilter %}", "noneOK"),
        ("{{ steps.research.output.summary | default('none') }} {{ [inputs.nope] | length }}", "none 1"),
        ("{{ steps.research.output.get('summary', 'none') }} {{ inputs.nope is defined }}", "none False"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_render_map_item_and_index() -> None:
    assert (
        render("Item {{ index + 1 }}: {{ item.name }}", {**CONTEXT, "item": {"name": "x"}, "index": 0}) == "Item 1: x"
    )


def test_template_cannot_change_what_it_reads() -> None:
    assert "unsafe" in failure("{{ inputs.numbers.append(4) }}")
    assert "unsafe" in failure("{{ steps.research.output.update({'items': 0}) }}")
    assert CONTEXT["inputs"]["numbers"] == [3, 1, 2]


# ------------------------------------------------------------ error messages


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ steps.resarch.output }}", "'steps' has no attribute 'resarch'"),
        ("{{ steps.research.output.summary }}", "'steps.research.output' has no attribute 'summary'"),
        ("{{ steps.research.output.facts[5] }}", "'steps.research.output.facts' has no element 5"),
        ("{{ topic }}", "'topic' is undefined"),
        ("{{ 'x' ~ inputs.missing }}", "'inputs' has no attribute 'missing'"),
        ("{{ 1 / 0 }}", "division by zero"),
        ("{{ inputs.topic + 1 }}", 'can only concatenate str (not "int") to str'),
        ("{{ x.y", "unexpected end of template, expected 'end of print statement'. (line 1)"),
        ("ok\n{% if %}", "line 2"),
        ("{{ inputs | nosuchfilter }}", "No filter named 'nosuchfilter'"),
        ("{% include 'other' %}", "no loader"),
    ],
)
def test_errors_are_one_short_line(template: str, message: str) -> None:
    text = failure(template)
    assert message in text
    assert "\n" not in text and "Traceback" not in text and len(text) <= 300


def test_template_error_is_an_invalid() -> None:
    with pytest.raises(Invalid):
        render("{{ nope }}", {})


# -------------------------------------------------------------------- sandbox


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ inputs.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__['os'] }}",
        "{{ range.__globals__ }}",
        "{{ steps | attr('__class__') }}",
        "{{ inputs['__class__'] }}",
        "{{ self.__init__.__globals__ }}",
        "{{ (1).to_bytes(10, 'big') }}",
        "{{ inputs.topic.format(1) }}",
        "{{ '{0.__class__}'.format(inputs) }}",
        "{{ namespace() }}",
        "{{ lipsum(10) }}",
    ],
)
def test_sandbox_refuses_python_internals(template: str) -> None:
    message = failure(template)
    assert "unsafe" in message or "undefined" in message, message


# ---------------------------------------------------------------- the budget


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'x' * 10**9 }}", "result too large"),
        ("{{ 10**9 * 'x' }}", "result too large"),
        ("{{ [0] * 1000000 }}", "result too large"),
        ("{{ 2 ** 100000 }}", "more than 1000 digits"),
        ("{{ (10 ** 999) * (10 ** 999) }}", "more than 1000 digits"),
        ("{{ '%0999999999d' % 1 }}", "result too large"),
        ("{{ '%0999999999d' | format(1) }}", "too much work"),
        ("{{ 'x' | center(1000000000) }}", "too much work"),
        ("{{ ('x\\n' * 50000) | indent(100000) }}", "too much work"),
        ("{{ range(100000) | join('x' * 1000) }}", "too much work"),
        ("{{ ('a' * 50000) | replace('', 'b' * 50000) }}", "too much work"),
        ("{{ [1] | batch(100000000, 'x') | list }}", "too much work"),
        ("{{ [[1], [2]] | sum(start=[]) }}", "sum adds numbers only"),
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "too much work"),
        ("{% for i in range(100000) %}{% if i == 1 and i == 2 and i == 3 %}{% endif %}{% endfor %}", "too much work"),
        ("{% set a = 'x' * 100000 %}" + "".join(f"{{% set a = a ~ a %}}{i}" for i in range(30)), "result too large"),
        ("{% set a = ['x' * 100000] %}" + "{% set a = [a, a] %}" * 40 + "{{ a }}", "too much work"),
        (
            "{% set d = {'k': 'x' * 100000} %}" + "{% set d = {'a': d, 'b': d} %}" * 40 + "{{ d | tojson }}",
            "too much work",
        ),
        ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}", "too much work"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nests too deeply"),
        ("{% for i in range(100000) %}{{ 'xxxxxxxxxx' }}{% endfor %}", "longer than 200000 characters"),
        ("{{ range(1000000) | list }}", "Range too big"),
        ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "recursive loops are not supported"),
    ],
)
def test_bombs_are_refused_quickly(template: str, message: str) -> None:
    started = time.monotonic()
    assert message in failure(template)
    assert time.monotonic() - started < 2


def test_constant_arguments_are_not_folded_past_the_budget() -> None:
    # Jinja evaluates constant filters at compile time; the guards must still apply at render time.
    templates.check_template("{{ 'x' | center(1000000000) }}")
    assert "too much work" in failure("{{ 'x' | center(1000000000) }}")


def test_a_big_loop_within_the_budget_renders() -> None:
    assert render("{% for i in range(20000) %}{{ i % 10 }}{% endfor %}", {}) == "0123456789" * 2000


# ---------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("steps.research.output.score > 4", True),
        ("steps.write.status == 'failed'", False),
        ("steps.research.output.facts", ["fur", "naps"]),
        ("steps.research.output.facts | map('upper')", ["FUR", "NAPS"]),  # lazy results come back as lists
        ("range(3)", [0, 1, 2]),
        ("inputs.tags.split(',') | map('trim') | list", ["a", "b", "c"]),
        ("{'n': inputs.n}", {"n": 3}),
    ],
)
def test_evaluate(expression: str, expected: object) -> None:
    assert evaluate(expression, CONTEXT) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("steps.research.output.nope", "'steps.research.output' has no attribute 'nope'"),
        ("missing", "'missing' is undefined"),
        ("1 +", "line 1"),
        ("a b", "unexpected text after the expression"),
        ("''.__class__", "unsafe"),
        ("'x' * 10**9", "result too large"),
    ],
)
def test_evaluate_errors(expression: str, message: str) -> None:
    assert message in failure(expression, expression=True)


def test_check_template_and_expression() -> None:
    templates.check_template("Hello {{ inputs.name }}")
    templates.check_expression("steps.a.output | length > 2")
    with pytest.raises(TemplateError, match=r"line 3"):
        templates.check_template("a\nb\n{% for %}")
    with pytest.raises(TemplateError, match=r"unexpected text"):
        templates.check_expression("steps.a }}")
    with pytest.raises(TemplateError, match="No filter named"):
        templates.check_expression("x | nofilter")


# ------------------------------------------------------------------- analysis


def test_referenced_steps_in_nested_blocks() -> None:
    text = "{% for x in steps.a.output %}{{ steps['b'].output }}{% if steps.c.status %}{{ x }}{% endif %}{% endfor %}"
    assert templates.referenced_steps(text) == {"a", "b", "c"}
    assert templates.referenced_steps("{% macro m() %}{{ steps.d | tojson }}{% endmacro %}{{ m() }}") == {"d"}
    assert templates.referenced_steps("{{ (steps.e.output ~ 'x') | upper if steps.f else '' }}") == {"e", "f"}


def test_referenced_steps_in_expressions() -> None:
    assert templates.referenced_steps("steps.a.output and steps['b'].output > 2", expression=True) == {"a", "b"}


def test_referenced_steps_ignores_computed_keys() -> None:
    assert templates.referenced_steps("{{ steps[inputs.which].output }}{{ inputs.steps.x }}") == set()


def test_referenced_names() -> None:
    text = (
        "{% set n = 2 %}{% for x in steps.a.output %}{{ loop.index }}{{ x }}{{ item }}{% endfor %}{{ n }}{{ range(2) }}"
    )
    assert templates.referenced_names(text) == {"steps", "item"}
    assert templates.referenced_names("inputs.a + index", expression=True) == {"inputs", "index"}
    assert templates.referenced_names("{{ namespace() }}") == {"namespace"}  # not available here


def test_referenced_keys() -> None:
    assert templates.referenced_keys("{{ inputs.topic }}{{ inputs['n'] }}{{ steps.a }}", "inputs") == {"topic", "n"}


def test_analysis_reports_syntax_errors() -> None:
    with pytest.raises(TemplateError, match="line 1"):
        templates.referenced_steps("{{ steps.a ")


def test_steps_read_lists_constant_lookups_or_none_when_any_step_may_be_read() -> None:
    assert templates.steps_read("{{ steps.a.output }} {{ steps['b'].output }}") == {"a", "b"}
    assert templates.steps_read("steps.c.output > 1", expression=True) == {"c"}
    assert templates.steps_read("{{ inputs.x }}") == frozenset()
    assert templates.steps_read("{{ steps[name].output }}") is None  # computed key: any step
    assert templates.steps_read("{{ steps | tojson }}") is None  # the whole mapping
