"""Agent tools: schemas from type hints, permissions at execution time, built-ins, executor failures."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import Field

from atom_core.agents.tools import (
    TOOLS,
    ToolCallRequest,
    ToolEnv,
    ToolError,
    ToolRegistry,
    ToolResult,
    execute,
    normalize_allowed_host,
)
from atom_core.context import Ctx
from atom_core.errors import Invalid
from atom_core.infra import egress

CTX = Ctx(tenant_id=uuid.uuid4(), user_id=uuid.uuid4(), role="member", actor="user:test")
NO_HTTP = ToolEnv()


async def run(
    name: str,
    arguments: Any = "",
    *,
    allowed: Any = None,
    env: ToolEnv = NO_HTTP,
    timeout_s: float = 5.0,
    registry: ToolRegistry | None = None,
    **kwargs: Any,
) -> ToolResult:
    registry = registry or TOOLS
    call = ToolCallRequest(id="call_1", name=name, arguments=arguments)
    allowed = registry.names() if allowed is None else allowed
    return await execute(CTX, call, allowed=allowed, env=env, timeout_s=timeout_s, registry=registry, **kwargs)


def output(result: ToolResult) -> Any:
    assert result.ok, result.error
    return json.loads(result.output)


# ------------------------------------------------------------------ registry and schemas


def make_registry() -> tuple[ToolRegistry, list[Any]]:
    registry = ToolRegistry()
    seen: list[Any] = []

    @registry.tool(tags={"read"})
    async def search(
        ctx: Ctx,
        query: Annotated[str, Field(description="What to look for.")],
        limit: int = 5,
        exact: bool = False,
        labels: list[str] | None = None,
        *,
        env: ToolEnv,
    ) -> dict[str, Any]:
        """Search the notes.

        Returns matching notes,
        best first.
        """
        seen.append((ctx, env))
        return {"query": query, "limit": limit, "exact": exact, "labels": labels}

    @registry.tool(tags={"write"})
    async def delete_everything() -> str:
        """Delete all notes."""
        seen.append("deleted")
        return "deleted"

    return registry, seen


def test_schema_comes_from_type_hints_and_hides_injected_parameters():
    registry, _ = make_registry()
    schema = registry.get("search").json_schema()
    assert schema["type"] == "function"
    function = schema["function"]
    assert function["name"] == "search"
    assert function["description"] == "Search the notes.\n\nReturns matching notes, best first."
    params = function["parameters"]
    assert params["type"] == "object"
    assert list(params["properties"]) == ["query", "limit", "exact", "labels"]  # no env, no ctx
    assert params["required"] == ["query"]
    assert params["additionalProperties"] is False
    props = params["properties"]
    assert props["query"] == {"type": "string", "description": "What to look for."}
    assert props["limit"] == {"type": "integer", "default": 5}
    assert props["exact"] == {"type": "boolean", "default": False}
    assert {"type": "array", "items": {"type": "string"}} in props["labels"]["anyOf"]
    assert "title" not in json.dumps(schema)


def test_tool_without_parameters_has_an_empty_object_schema():
    registry, _ = make_registry()
    params = registry.get("delete_everything").json_schema()["function"]["parameters"]
    assert params["properties"] == {}
    assert "required" not in params


def test_schemas_expose_only_allowed_tools_in_a_stable_order():
    registry, _ = make_registry()
    assert [s["function"]["name"] for s in registry.schemas(["search"])] == ["search"]
    both = registry.schemas(["search", "delete_everything", "not_registered"])
    assert [s["function"]["name"] for s in both] == ["delete_everything", "search"]
    assert registry.schemas([]) == []
    with pytest.raises(TypeError):
        registry.schemas("search")  # a string is not a list of names


def test_builtin_registry():
    assert TOOLS.names() == ["calculator", "datetime_now", "http_get"]
    assert TOOLS.get("calculator").tags == {"read"}
    assert TOOLS.get("http_get").tags == {"network", "read"}
    http_params = TOOLS.get("http_get").json_schema()["function"]["parameters"]
    assert list(http_params["properties"]) == ["url"]
    zone = TOOLS.get("datetime_now").json_schema()["function"]["parameters"]["properties"]["timezone"]
    assert zone["default"] == "UTC"


def test_validate_names():
    assert TOOLS.validate_names(["http_get", "calculator", "http_get"]) == ["http_get", "calculator"]
    assert TOOLS.validate_names([]) == []
    with pytest.raises(Invalid) as one:
        TOOLS.validate_names(["calculator", "rm_rf"])
    assert one.value.field == "tools"
    assert one.value.message == "unknown tool: rm_rf"
    with pytest.raises(Invalid) as two:
        TOOLS.validate_names(["a", "b"])
    assert two.value.message == "unknown tools: a, b"
    with pytest.raises(Invalid) as typed:
        TOOLS.validate_names([3])
    assert typed.value.field == "tools"


async def _documented(x: int) -> int:
    """Doc."""
    return x


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"tags": {"read", "admin"}}, ValueError),
        ({"tags": set()}, ValueError),
        ({"tags": {"read"}, "name": "bad name!"}, ValueError),
        ({"tags": {"read"}, "name": "calculator"}, ValueError),  # already registered
    ],
)
def test_registration_rejects_bad_tags_names_and_duplicates(kwargs, error):
    registry = ToolRegistry()
    registry.register(_documented, name="calculator", tags={"read"})
    with pytest.raises(error):
        registry.register(_documented, **kwargs)


def test_registration_rejects_functions_that_cannot_be_tools():
    registry = ToolRegistry()

    def sync_tool(x: int) -> int:
        """Blocks the loop."""
        return x

    async def no_hint(x) -> int:
        """No hint."""
        return x

    async def no_doc(x: int) -> int:
        return x

    async def star(*args: int) -> int:
        """Varargs."""
        return 0

    for fn in (sync_tool, no_hint, no_doc, star):
        with pytest.raises((TypeError, ValueError)):
            registry.register(fn, tags={"read"})
    assert registry.names() == []
    registry.register(no_doc, description="Explicit description.", tags=["read"])
    assert registry.get("no_doc").description == "Explicit description."


# -------------------------------------------------------------------------- executor


async def test_not_allowed_tool_is_refused_at_execution_and_never_runs():
    registry, seen = make_registry()
    result = await run("delete_everything", "{}", allowed=["search"], registry=registry)
    assert result.refused is True
    assert result.ok is False
    assert result.error_code == "refused"
    assert "not available" in json.loads(result.output)["error"]
    assert "available: search" in result.output
    assert seen == []  # the permission check happens before the tool is touched


async def test_unknown_tool_is_refused():
    result = await run("launch_missiles", '{"target": "moon"}')
    assert result.refused is True and not result.ok
    assert "launch_missiles" in result.error
    assert result.to_message() == {
        "role": "tool",
        "tool_call_id": "call_1",
        "name": "launch_missiles",
        "content": result.output,
    }


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"query": ', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("{}", "query: Field required"),
        ('{"query": "x", "limit": "many"}', "limit: Input should be a valid integer"),
        ('{"query": "x", "sudo": true}', "sudo: Extra inputs are not permitted"),
        ('{"query": "x", "labels": [1, {}]}', "labels.1"),
    ],
)
async def test_bad_arguments_become_an_error_result_naming_the_problem(arguments, expected):
    registry, seen = make_registry()
    result = await run("search", arguments, registry=registry)
    assert not result.ok and not result.refused
    assert result.error_code == "invalid_arguments"
    assert expected in result.error
    assert expected in json.loads(result.output)["error"]
    assert seen == []


async def test_valid_arguments_are_coerced_and_env_and_ctx_injected():
    registry, seen = make_registry()
    env = ToolEnv(http_allowed_hosts={"example.com"})
    result = await run("search", '{"query": "cats", "limit": 2}', registry=registry, env=env)
    assert output(result) == {"query": "cats", "limit": 2, "exact": False, "labels": None}
    assert seen == [(CTX, env)]
    # Already-parsed arguments and the empty string some models send for no arguments are accepted.
    assert output(await run("search", {"query": "dogs"}, registry=registry))["query"] == "dogs"
    assert (await run("delete_everything", "", registry=registry)).output == "deleted"


async def test_tool_exception_becomes_an_error_result_without_traceback_or_secret():
    registry = ToolRegistry()

    @registry.tool(tags={"read"})
    async def leaky() -> str:
        """Fails."""
        raise RuntimeError("connect failed: postgresql://app:hunter2@db/atom")

    @registry.tool(tags={"read"})
    async def polite() -> str:
        """Fails politely."""
        raise ToolError("the archive is offline, try later")

    result = await run("leaky", registry=registry)
    assert not result.ok and not result.refused
    assert result.error_code == "error"
    assert "RuntimeError" in result.error
    assert "hunter2" not in result.output and "Traceback" not in result.output and "hunter2" not in result.error
    polite_result = await run("polite", registry=registry)
    assert polite_result.error == "the archive is offline, try later"
    assert polite_result.error_code == "tool_error"


async def test_tool_timeout_becomes_a_timeout_result():
    registry = ToolRegistry()

    @registry.tool(tags={"read"})
    async def sleepy() -> str:
        """Sleeps."""
        await asyncio.sleep(30)
        return "woke up"

    @registry.tool(tags={"read"})
    async def raises_timeout() -> str:
        """Raises TimeoutError itself."""
        raise TimeoutError

    result = await run("sleepy", registry=registry, timeout_s=0.05)
    assert not result.ok
    assert result.error_code == "timeout"
    assert "timed out after 0.05 s" in result.error
    assert result.duration_ms < 5000
    own = await run("raises_timeout", registry=registry, timeout_s=5)
    assert own.error_code == "error"  # not mistaken for the executor's deadline


async def test_cancelling_the_run_is_not_swallowed():
    registry = ToolRegistry()
    started = asyncio.Event()

    @registry.tool(tags={"read"})
    async def forever() -> str:
        """Never ends."""
        started.set()
        await asyncio.sleep(30)
        return "never"

    task = asyncio.create_task(run("forever", registry=registry, timeout_s=60))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_long_output_is_truncated_with_a_marker():
    registry = ToolRegistry()

    @registry.tool(tags={"read"})
    async def chatty() -> str:
        """Talks a lot."""
        return "x" * 50_000

    result = await run("chatty", registry=registry, max_output_chars=1000)
    assert result.ok and result.truncated
    assert result.output.startswith("x" * 1000)
    assert "output truncated: 1000 of 50000 characters shown" in result.output
    assert len(result.output) < 1100


async def test_allowed_must_be_a_collection_not_a_string():
    with pytest.raises(TypeError):
        await run("calculator", '{"expression": "1"}', allowed="calculator")


def test_tool_call_request_from_openai_shapes():
    function = {"name": "calculator", "arguments": '{"expression":"1"}'}
    as_dict = {"id": "call_9", "type": "function", "function": function}
    assert ToolCallRequest.from_openai(as_dict) == ToolCallRequest(
        id="call_9", name="calculator", arguments='{"expression":"1"}'
    )
    as_object = SimpleNamespace(id="call_8", function=SimpleNamespace(name="datetime_now", arguments=None))
    assert ToolCallRequest.from_openai(as_object) == ToolCallRequest(id="call_8", name="datetime_now", arguments="")


# ------------------------------------------------------------------------ calculator


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("2 ** 10", 1024),
        ("-2 ** 2", -4),
        ("2 ** -1", 0.5),
        ("+5 - -5", 10),
        ("sqrt(16) + abs(-3)", 7.0),
        ("round(pi, 2)", 3.14),
        ("round(2.5)", 2),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("log(e) + log(8, 2) + log10(1000)", 7.0),
        ("sin(0) + cos(0) + tan(0) + exp(0)", 2.0),
        ("floor(2.7) + ceil(2.1)", 5),
        ("2 ** 1000 // 2 ** 999", 2),
        ("1e3 * 2", 2000.0),
        ("  12.5 * 4  ", 50.0),
    ],
)
async def test_calculator_evaluates(expression, expected):
    result = output(await run("calculator", json.dumps({"expression": expression})))
    assert result["result"] == pytest.approx(expected)
    assert type(result["result"]) is type(expected)


async def test_calculator_float_rounding_is_plain_float_arithmetic():
    assert output(await run("calculator", '{"expression": "0.1 + 0.2"}'))["result"] == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("__import__('os')", "only these functions can be called"),
        ("__import__('os').system('id')", "only these functions can be called"),
        ("(1).__class__", "Attribute is not allowed"),
        ("().__class__", "Attribute is not allowed"),
        ("().__class__.__bases__[0].__subclasses__()", "only these functions can be called"),
        ("open('x')", "only these functions can be called"),
        ("sqrt.__globals__", "Attribute is not allowed"),
        ("pi.real", "Attribute is not allowed"),
        ("9**9**9", "too large"),
        ("10 ** 400", "too large"),
        ("10.0 ** 400", "too large"),
        ("exp(1000)", "too large"),
        ("1e308 * 10", "too large"),
        ("round(5, -10**7)", "between -100 and 100"),
        ("'a'*10**9", "only numbers are allowed"),
        ("b'a'", "only numbers are allowed"),
        ("True + 1", "only numbers are allowed"),
        ("1j", "only numbers are allowed"),
        ("x + 1", "unknown name 'x'"),
        ("__builtins__", "unknown name"),
        ("lambda: 1", "Lambda is not allowed"),
        ("(lambda: 1)()", "only these functions can be called"),
        ("[x for x in (1, 2)]", "ListComp is not allowed"),
        ("1 if 1 else 2", "IfExp is not allowed"),
        ("1 < 2", "Compare is not allowed"),
        ("2 ^ 3", "write powers with '**'"),
        ("1 << 3", "not supported"),
        ("sqrt(x=4)", "plain positional arguments"),
        ("sqrt(1, 2)", "wrong arguments for sqrt()"),
        ("import os", "not a valid arithmetic expression"),
        ("1 +", "not a valid arithmetic expression"),
        ("1/0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("(-8) ** 0.5", "not a real number"),
        ("1" * 600, "too long"),
        ("-" * 300 + "1", "nested too deeply"),
    ],
)
async def test_calculator_refuses_everything_else_with_an_error_result(expression, expected):
    result = await run("calculator", json.dumps({"expression": expression}))
    assert not result.ok and not result.refused
    assert result.error_code == "invalid"
    assert expected in result.error
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------- datetime_now


def _parse(result: ToolResult) -> tuple[dict[str, Any], datetime]:
    data = output(result)
    return data, datetime.fromisoformat(data["datetime"])


async def test_datetime_now_defaults_to_utc():
    data, now = _parse(await run("datetime_now"))
    assert data["timezone"] == "UTC" and data["utc_offset"] == "+00:00"
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)
    assert data["weekday"] == now.strftime("%A")


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Europe/Paris", "America/New_York"])
async def test_datetime_now_in_a_zone(zone):
    data, now = _parse(await run("datetime_now", json.dumps({"timezone": zone})))
    assert data["timezone"] == zone
    assert now.utcoffset() == datetime.now(ZoneInfo(zone)).utcoffset()
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)
    if zone == "Asia/Kolkata":
        assert data["utc_offset"] == "+05:30"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime", "", "Europe"])
async def test_datetime_now_rejects_unknown_zones(zone):
    result = await run("datetime_now", json.dumps({"timezone": zone}))
    assert not result.ok
    assert "unknown time zone" in result.error and "IANA" in result.error


# -------------------------------------------------------------------------- ToolEnv


def test_allowed_hosts_are_normalized_and_checked():
    env = ToolEnv(http_allowed_hosts=["API.Example.com.", " localhost:8080 ", "Bücher.de", "[::1]:9000"])
    assert env.http_allowed_hosts == {"api.example.com", "localhost:8080", "xn--bcher-kva.de", "[::1]:9000"}
    for bad in ["https://example.com", "example.com/path", "user@example.com", "", "exa mple.com"]:
        with pytest.raises(Invalid) as err:
            normalize_allowed_host(bad)
        assert err.value.field == "http_allowed_hosts"
    with pytest.raises(Invalid):
        ToolEnv(http_allowed_hosts="example.com")
    with pytest.raises(Invalid):
        ToolEnv(http_max_bytes=0)


# -------------------------------------------------------------------------- http_get


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[str] = []
        self.stop = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up early (truncation, timeouts) are expected here


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        port = self.server.server_address[1]
        if self.path == "/hello":
            self._send(200, "hello from loopback ✓".encode())
        elif self.path == "/json":
            self._send(200, b'{"answer": 42}', "application/json")
        elif self.path == "/missing":
            self._send(404, b"no such page")
        elif self.path == "/big":
            self._send(200, b"x" * 10_000)
        elif self.path == "/image":
            self._send(200, b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png")
        elif self.path == "/slow":
            self.server.stop.wait(5)
            self._send(200, b"finally")
        elif self.path == "/drip":  # each byte comes quickly, the whole body never does
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "200")
            self.end_headers()
            for _ in range(200):
                self.wfile.write(b"x")
                self.wfile.flush()
                if self.server.stop.wait(0.05):
                    break
        elif self.path == "/redirect-out":
            self._send(302, headers={"Location": f"http://localhost:{port}/target"})
        elif self.path == "/redirect-metadata":  # where a cloud's metadata service answers
            self._send(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        elif self.path == "/redirect-in":
            self._send(302, headers={"Location": "/hello"})
        elif self.path == "/redirect-loop":
            self._send(302, headers={"Location": "/redirect-loop"})
        elif self.path == "/target":
            self._send(200, b"target reached")
        else:
            self._send(404, b"unknown")


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.stop.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def base(server: _Server) -> str:
    server.hits.clear()
    return f"http://127.0.0.1:{server.server_address[1]}"


def loopback_env(hosts: set[str], **limits: Any) -> ToolEnv:
    """An allow-list for the test server. It listens on loopback, which the egress rules
    (atom_core.infra.egress) refuse in server mode: allowed here explicitly."""
    return ToolEnv(http_allowed_hosts=hosts, allow_private_networks=True, **limits)


LOOPBACK = loopback_env({"127.0.0.1"})


async def get(url: str, env: ToolEnv = LOOPBACK, timeout_s: float = 5.0) -> ToolResult:
    return await run("http_get", json.dumps({"url": url}), env=env, timeout_s=timeout_s)


def fixed_dns(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """ATOM's resolver (`egress.resolve`) gives these answers in turn (the last one from then
    on); the system's resolver is never asked. Returns the names looked up."""
    asked: list[str] = []
    queue = list(answers)

    async def resolve(host: str, port: int | None = None) -> list:
        asked.append(host)
        return [ipaddress.ip_address(queue.pop(0) if len(queue) > 1 else queue[0])]

    monkeypatch.setattr(egress, "resolve", resolve)
    return asked


async def test_http_get_connects_to_the_address_it_checked(server, base, monkeypatch):
    """`.invalid` names never resolve on a real resolver: the request can only arrive if the
    connection went to the address ATOM resolved and checked."""
    asked = fixed_dns(monkeypatch, "127.0.0.1")
    port = server.server_address[1]
    result = await get(f"http://pinned.invalid:{port}/hello", env=loopback_env({"pinned.invalid"}))
    assert result.ok, result.error
    assert output(result)["text"] == "hello from loopback ✓" and server.hits == ["/hello"]
    assert set(asked) == {"pinned.invalid"}


async def test_http_get_refuses_a_dns_answer_that_changes_after_the_check(server, base, monkeypatch):
    """DNS rebinding: a public address when the host is checked, loopback when it is connected to."""
    fixed_dns(monkeypatch, "93.184.216.34", "127.0.0.1")
    port = server.server_address[1]
    env = ToolEnv(http_allowed_hosts={"rebind.invalid"}, allow_private_networks=False)
    result = await get(f"http://rebind.invalid:{port}/hello", env=env)
    assert not result.ok and "resolved to an address this server does not allow" in result.error
    assert server.hits == []


async def test_http_get_is_off_without_allow_listed_hosts(server, base):
    result = await get(f"{base}/hello", env=NO_HTTP)
    assert not result.ok and result.error_code == "forbidden"
    assert "not allow-listed any hosts" in result.error
    assert server.hits == []


async def test_http_get_refuses_hosts_not_allow_listed(server, base):
    result = await get(f"{base}/hello", env=loopback_env({"example.com"}))
    assert not result.ok and result.error_code == "forbidden"
    assert "'127.0.0.1' is not allow-listed" in result.error
    port = server.server_address[1]
    wrong_port = await get(f"{base}/hello", env=loopback_env({f"127.0.0.1:{port + 1}"}))
    assert wrong_port.error_code == "forbidden"
    assert server.hits == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///etc/passwd", "only http:// and https://"),
        ("ftp://127.0.0.1/x", "only http:// and https://"),
        ("http://user:secret@127.0.0.1/hello", "user names or passwords"),
        ("not a url", "only http:// and https://"),
    ],
)
async def test_http_get_rejects_bad_urls(server, base, url, expected):
    result = await get(url)
    assert not result.ok
    assert expected in result.error
    assert server.hits == []


async def test_http_get_fetches_an_allowed_host(server, base):
    data = output(await get(f"{base}/hello"))
    assert data["status"] == 200
    assert data["content_type"] == "text/plain; charset=utf-8"
    assert data["text"] == "hello from loopback ✓"
    assert data["truncated"] is False
    assert server.hits == ["/hello"]
    port = server.server_address[1]
    exact_port = output(await get(f"{base}/json", env=loopback_env({f"127.0.0.1:{port}"})))
    assert json.loads(exact_port["text"]) == {"answer": 42}
    missing = output(await get(f"{base}/missing"))
    assert missing["status"] == 404 and missing["text"] == "no such page"


async def test_http_get_stops_at_the_byte_limit(base):
    data = output(await get(f"{base}/big", env=loopback_env({"127.0.0.1"}, http_max_bytes=1000)))
    assert data["truncated"] is True
    assert data["bytes"] == 1000 and data["text"] == "x" * 1000
    assert "cut at 1000 bytes" in data["note"]
    whole = output(await get(f"{base}/big", env=loopback_env({"127.0.0.1"}, http_max_bytes=20_000)))
    assert whole["truncated"] is False and whole["bytes"] == 10_000


async def test_http_get_does_not_return_binary_bodies(base):
    data = output(await get(f"{base}/image"))
    assert data["content_type"] == "image/png" and data["text"] == ""
    assert "binary" in data["note"]


async def test_http_get_times_out_on_a_slow_endpoint(base):
    env = loopback_env({"127.0.0.1"}, http_timeout_s=0.3)
    result = await get(f"{base}/slow", env=env)
    assert not result.ok and result.error_code == "tool_error"
    assert "timed out after 0.3 s" in result.error
    assert result.duration_ms < 3000


async def test_http_get_deadline_covers_a_body_that_drips(base):
    # Every read is fast (50 ms < 0.5 s), so only a deadline for the whole request can stop this.
    env = loopback_env({"127.0.0.1"}, http_timeout_s=0.5)
    result = await get(f"{base}/drip", env=env)
    assert not result.ok
    assert "timed out after 0.5 s" in result.error
    assert result.duration_ms < 5000


async def test_executor_deadline_applies_to_http_get(base):
    result = await get(f"{base}/slow", timeout_s=0.2)
    assert not result.ok and result.error_code == "timeout"


async def test_http_get_does_not_follow_a_redirect_to_a_host_not_allow_listed(server, base):
    result = await get(f"{base}/redirect-out")
    assert not result.ok and result.error_code == "forbidden"
    assert "redirect to host 'localhost' is not allow-listed" in result.error
    assert server.hits == ["/redirect-out"]  # /target was never requested
    # Control: the same redirect is followed once its host is allowed, so the refusal above is the allow-list's doing.
    followed = output(await get(f"{base}/redirect-out", env=loopback_env({"127.0.0.1", "localhost"})))
    assert followed["text"] == "target reached"
    assert followed["url"].startswith("http://localhost:")
    assert server.hits == ["/redirect-out", "/redirect-out", "/target"]


async def test_http_get_follows_redirects_within_allowed_hosts_up_to_a_limit(server, base):
    data = output(await get(f"{base}/redirect-in"))
    assert data["text"] == "hello from loopback ✓" and data["url"].endswith("/hello")
    loop = await get(f"{base}/redirect-loop")
    assert not loop.ok and "too many redirects" in loop.error
    assert server.hits.count("/redirect-loop") == LOOPBACK.http_max_redirects + 1


async def test_http_get_reports_connection_failures():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: the connection is refused
        result = await get(f"http://127.0.0.1:{port}/")
    assert not result.ok and result.error_code == "tool_error"
    assert "request failed (ConnectError" in result.error


# --------------------------------------------------- http_get and private addresses


async def test_http_get_refuses_loopback_when_private_networks_are_not_allowed(server, base):
    refused = await get(f"{base}/hello", env=ToolEnv(http_allowed_hosts={"127.0.0.1"}, allow_private_networks=False))
    assert not refused.ok and refused.error_code == "forbidden"
    assert "private, loopback or reserved" in refused.error and "ATOM_ALLOW_PRIVATE_NETWORKS" in refused.error
    assert server.hits == []
    allowed = output(await get(f"{base}/hello", env=loopback_env({"127.0.0.1"})))  # the same, allowed
    assert allowed["status"] == 200


@pytest.mark.parametrize("host", ["169.254.169.254", "[fe80::1]", "[::ffff:169.254.169.254]"])
async def test_http_get_never_reaches_link_local_addresses(host):
    env = ToolEnv(http_allowed_hosts={host}, allow_private_networks=True)  # allow-listed and private allowed
    result = await get(f"http://{host}/latest/meta-data/", env=env)
    assert not result.ok and result.error_code == "forbidden"
    assert "link-local" in result.error


async def test_http_get_checks_the_address_of_every_redirect(server, base):
    env = loopback_env({"127.0.0.1", "169.254.169.254"})  # the allow-list would let the hop through
    result = await get(f"{base}/redirect-metadata", env=env)
    assert not result.ok and result.error_code == "forbidden"
    assert result.error.startswith("redirect refused:") and "link-local" in result.error
    assert server.hits == ["/redirect-metadata"]


async def test_http_get_refuses_a_name_that_resolves_to_loopback(server, base):
    port = server.server_address[1]
    env = ToolEnv(http_allowed_hosts={"localhost"}, allow_private_networks=False)
    result = await get(f"http://localhost:{port}/hello", env=env)
    assert not result.ok and "'localhost' points to a private" in result.error
    assert server.hits == []
