"""Agent tools: the registry, the built-ins (`TOOLS`) and the executor the agent loop calls."""

from atom_core.agents.tools.builtins import TOOLS
from atom_core.agents.tools.env import ToolEnv, normalize_allowed_host
from atom_core.agents.tools.executor import ToolCallRequest, ToolResult, execute
from atom_core.agents.tools.registry import TAGS, Tool, ToolError, ToolRegistry, make_tool

__all__ = [
    "TAGS",
    "TOOLS",
    "Tool",
    "ToolCallRequest",
    "ToolEnv",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "execute",
    "make_tool",
    "normalize_allowed_host",
]
