"""`atom agent …`: create, list, show, run (plain and streamed, with a session), delete."""

from __future__ import annotations

import json

from tests.test_cli import assert_one_line_error, atom, ok


def test_agent_lifecycle_and_runs_offline(backend: str) -> None:
    tenant = json.loads(ok("tenant create Acme --owner-email ada@example.com --owner-password {pw}"))["slug"]
    created = json.loads(ok(f"agent create --tenant {tenant} calc --name Calculator --tools calculator"))
    assert created["slug"] == "calc"
    assert "calc" in ok(f"agent list --tenant {tenant}")
    assert json.loads(ok(f"agent show --tenant {tenant} calc"))["tools"] == ["calculator"]

    answered = atom(f"agent run --tenant {tenant} calc 'What is 6 * 7?'")
    assert answered.exit_code == 0, answered.stderr
    assert "42" in answered.stdout
    assert "succeeded" in answered.stderr and "tokens" in answered.stderr and "$0.000000" in answered.stderr

    streamed = atom(f"agent run --tenant {tenant} calc 'hello there' --stream --session s-1")
    assert streamed.exit_code == 0 and "You asked" in streamed.stdout and "session s-1" in streamed.stderr
    follow_up = atom(f"agent run --tenant {tenant} calc 'and again' --session s-1")
    assert "Earlier in this conversation" in follow_up.stdout  # the session's history reached the model

    assert "deleted calc" in ok(f"agent delete --tenant {tenant} calc")
    assert_one_line_error(atom(f"agent show --tenant {tenant} calc"), "no agent")


def test_agent_create_takes_fallbacks_in_order(backend: str) -> None:
    tenant = json.loads(ok("tenant create Acme --owner-email cy@example.com --owner-password {pw}"))["slug"]
    ok(f"agent create --tenant {tenant} fb --name Fb --model openai/a --fallback openai/b --fallback anthropic/c")
    assert json.loads(ok(f"agent show --tenant {tenant} fb"))["fallbacks"] == ["openai/b", "anthropic/c"]
    assert_one_line_error(atom(f"agent create --tenant {tenant} fb2 --name X --fallback nope"), "fallbacks")


def test_agent_create_bad_input_exits_2(backend: str) -> None:
    tenant = json.loads(ok("tenant create Acme --owner-email bo@example.com --owner-password {pw}"))["slug"]
    assert_one_line_error(atom(f"agent create --tenant {tenant} 'Bad Slug' --name X"), "slug")
    assert_one_line_error(atom(f"agent create --tenant {tenant} ok --name X --tools nope"), "tool")
    assert_one_line_error(atom(f"agent run --tenant {tenant} missing hi"), "no agent")
