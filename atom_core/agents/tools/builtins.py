"""Built-in tools and the default registry `TOOLS` that holds them."""

from __future__ import annotations

import ast
import asyncio
import codecs
import math
import operator
import re
import ssl
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import certifi
import httpx
from pydantic import Field

from atom_core.agents.tools.env import ToolEnv, host_key
from atom_core.agents.tools.registry import ToolError, ToolRegistry
from atom_core.errors import Forbidden, Invalid
from atom_core.infra import egress

# ---------------------------------------------------------------- calculator

MAX_EXPRESSION_CHARS = 500
MAX_INT_BITS = 1024  # about 1.8e308, the float range: results beyond it are refused, not computed
_MAX_DEPTH = 200

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


def _bad(message: str) -> Invalid:
    return Invalid(message, field="expression")


def _checked(value: Any) -> int | float:
    if isinstance(value, complex):
        raise _bad("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _bad("the result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad("the result is too large" if math.isinf(value) else "the result is not a number")
    return value


def _round(number: int | float, ndigits: int | None = None) -> int | float:
    # round(5, -10**7) computes 10**(10**7) first: seconds of blocked event loop.
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > 100):
        raise _bad("round() takes a whole number of digits between -100 and 100")
    return round(number, ndigits)


def _power(base: int | float, exponent: int | float) -> int | float:
    # Estimate the size first: 9**9**9 must be refused, not computed.
    exact = isinstance(base, int) and isinstance(exponent, int)
    if exact and exponent > 0 and abs(base) > 1 and exponent * math.log2(abs(base)) > MAX_INT_BITS:
        raise _bad("the result is too large")
    return base**exponent


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "floor": math.floor,
    "ceil": math.ceil,
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _evaluate(node: ast.AST, depth: int = 0) -> int | float:
    if depth > _MAX_DEPTH:
        raise _bad("the expression is nested too deeply")
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, depth + 1)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise _bad(f"only numbers are allowed, not {type(node.value).__name__} values")
        return _checked(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand, depth + 1)
        return _checked(-value if isinstance(node.op, ast.USub) else +value)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.BitXor):
            raise _bad("'^' is not supported; write powers with '**'")
        left, right = _evaluate(node.left, depth + 1), _evaluate(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            return _checked(_power(left, right))
        function = _BINARY.get(type(node.op))
        if function is None:
            raise _bad(f"the operator {type(node.op).__name__} is not supported")
        return _checked(function(left, right))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise _bad(f"unknown name {node.id!r}; allowed constants: {', '.join(_CONSTANTS)}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise _bad(f"only these functions can be called: {', '.join(_FUNCTIONS)}")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise _bad(f"{node.func.id}() takes plain positional arguments only")
        args = [_evaluate(arg, depth + 1) for arg in node.args]
        try:
            return _checked(_FUNCTIONS[node.func.id](*args))
        except TypeError:
            raise _bad(f"wrong arguments for {node.func.id}()") from None
    raise _bad(
        f"{type(node).__name__} is not allowed; use numbers, + - * / // % **, parentheses and "
        f"the functions {', '.join(_FUNCTIONS)}"
    )


def evaluate_expression(expression: str) -> int | float:
    """Evaluate arithmetic by walking its syntax tree; raises Invalid for anything else."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise _bad(f"the expression is too long (at most {MAX_EXPRESSION_CHARS} characters)")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise _bad(f"not a valid arithmetic expression ({exc.msg})") from None
    except (ValueError, MemoryError, RecursionError):
        raise _bad("not a valid arithmetic expression") from None
    try:
        return _evaluate(tree)
    except ZeroDivisionError:
        raise _bad("division by zero") from None
    except OverflowError:
        raise _bad("the result is too large") from None
    except ValueError:  # math domain errors: sqrt(-1), log(0)
        raise _bad("math domain error (e.g. square root of a negative number or log of zero)") from None
    except RecursionError:
        raise _bad("the expression is nested too deeply") from None


async def calculator(
    expression: Annotated[str, Field(description="Arithmetic expression, e.g. '(2 + 3) * sqrt(16) / 7'.")],
) -> dict[str, Any]:
    """Evaluate an arithmetic expression safely. Supports numbers, + - * / // % ** and parentheses,
    the functions sqrt, sin, cos, tan, asin, acos, atan, log, log10, log2, exp, floor, ceil, abs, round, min, max
    and the constants pi, e, tau. Use it for any arithmetic instead of calculating in your head."""
    return {"expression": expression, "result": evaluate_expression(expression)}


# -------------------------------------------------------------- datetime_now

_ZONE_KEY = re.compile(r"^[A-Za-z0-9_+-]{1,32}(/[A-Za-z0-9_+-]{1,32}){0,2}$")


async def datetime_now(
    timezone: Annotated[str, Field(description="IANA time zone name, e.g. 'Europe/Paris' or 'UTC'.")] = "UTC",
) -> dict[str, Any]:
    """Return the current date and time (ISO 8601) in a time zone, with its UTC offset and weekday."""
    key = "UTC" if timezone.strip().upper() == "UTC" else timezone.strip()
    unknown = Invalid(f"unknown time zone {timezone!r}; use an IANA name such as 'Europe/Paris'", field="timezone")
    if not _ZONE_KEY.match(key):
        raise unknown
    try:
        zone = await asyncio.to_thread(ZoneInfo, key)  # the first lookup of a zone reads a file
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise unknown from None
    now = datetime.now(zone)
    return {
        "timezone": key,
        "datetime": now.isoformat(timespec="seconds"),
        "utc_offset": now.strftime("%z")[:3] + ":" + now.strftime("%z")[3:],
        "weekday": now.strftime("%A"),
    }


# ------------------------------------------------------------------ http_get

_TEXT_TYPES = {
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-yaml",
    "application/yaml",
    "application/x-www-form-urlencoded",
}
_ssl_context: ssl.SSLContext | None = None


async def _tls() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:  # loading the CA bundle is file I/O: keep it off the event loop
        _ssl_context = await asyncio.to_thread(ssl.create_default_context, cafile=certifi.where())
    return _ssl_context


def _checked_url(raw: str, env: ToolEnv, *, redirect: bool = False) -> httpx.URL:
    try:
        url = httpx.URL(raw)
        host = host_key(url)
    except (httpx.InvalidURL, UnicodeError, ValueError):
        raise Invalid(f"not a valid URL: {raw[:200]!r}", field="url") from None
    if url.scheme not in ("http", "https"):
        raise Invalid("only http:// and https:// URLs are supported", field="url")
    if not host:
        raise Invalid("the URL has no host", field="url")
    if url.userinfo:
        raise Invalid("URLs with user names or passwords are not supported", field="url")
    if not env.allows(url):
        what = "redirect to host" if redirect else "host"
        raise Forbidden(
            f"{what} {host!r} is not allow-listed for http_get (allowed: {', '.join(sorted(env.http_allowed_hosts))})",
            field="url",
        )
    return url


async def _reachable(url: httpx.URL, env: ToolEnv, *, redirect: bool = False) -> httpx.URL:
    """The URL, if every address its host resolves to may be reached (see `atom_core.infra.egress`)."""
    try:
        reason = await egress.check_host(host_key(url), url.port, allow_private=env.allow_private_networks)
    except egress.Unresolvable:
        raise ToolError(f"the host {host_key(url)!r} could not be resolved") from None
    if reason:
        raise Forbidden(f"{'redirect refused: ' if redirect else ''}{reason}", field="url")
    return url


def _is_text(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return not mime or mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith(("+json", "+xml"))


async def _read(response: httpx.Response, env: ToolEnv) -> dict[str, Any]:
    content_type = response.headers.get("content-type", "")
    result: dict[str, Any] = {"url": str(response.url), "status": response.status_code, "content_type": content_type}
    if not _is_text(content_type):
        return {**result, "bytes": None, "truncated": False, "text": "", "note": "binary content is not shown"}
    body = bytearray()
    truncated = False
    async for chunk in response.aiter_bytes():  # never trust Content-Length: stop at the limit
        room = env.http_max_bytes - len(body)
        if len(chunk) > room:
            body += chunk[:room]
            truncated = True
            break
        body += chunk
    encoding = response.charset_encoding or "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    result.update(bytes=len(body), truncated=truncated, text=body.decode(encoding, errors="replace"))
    if truncated:
        result["note"] = f"the body was cut at {env.http_max_bytes} bytes"
    return result


async def http_get(
    url: Annotated[
        str, Field(description="Absolute http:// or https:// URL on an allow-listed host.", max_length=2048)
    ],
    env: ToolEnv,
) -> dict[str, Any]:
    """Fetch a URL with HTTP GET and return its status, content type and text (size-limited).
    Only hosts this workspace has allow-listed can be reached."""
    if not env.http_allowed_hosts:
        raise Forbidden("http_get is off: this workspace has not allow-listed any hosts", field="url")
    target = await _reachable(_checked_url(url, env), env)
    tls = await _tls()
    headers = {"Accept-Encoding": "identity", "User-Agent": "ATOM-agent (http_get tool)"}
    try:
        async with (
            asyncio.timeout(env.http_timeout_s),  # one deadline for everything: a slow drip cannot outlast it
            httpx.AsyncClient(
                transport=egress.pinned_transport(tls, allow_private=env.allow_private_networks),
                follow_redirects=False,
                headers=headers,
                timeout=env.http_timeout_s,
            ) as client,
        ):
            for _ in range(env.http_max_redirects + 1):
                async with client.stream("GET", target) as response:
                    if not response.is_redirect:
                        return await _read(response, env)
                    # Each hop is checked (allow-list, then address) before it is requested.
                    hop = _checked_url(str(response.url.join(response.headers["location"])), env, redirect=True)
                    target = await _reachable(hop, env, redirect=True)
            raise ToolError(f"too many redirects (more than {env.http_max_redirects})")
    except (TimeoutError, httpx.TimeoutException):
        raise ToolError(f"the request timed out after {env.http_timeout_s:g} s") from None
    except httpx.InvalidURL:
        raise ToolError("the server redirected to an invalid URL") from None
    except httpx.HTTPError as exc:
        raise ToolError(f"the request failed ({type(exc).__name__}: {str(exc)[:200]})") from None


# ------------------------------------------------------------ default registry

TOOLS = ToolRegistry()
TOOLS.register(calculator, tags={"read"})
TOOLS.register(datetime_now, tags={"read"})
TOOLS.register(http_get, tags={"network", "read"})
