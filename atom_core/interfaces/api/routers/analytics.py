"""Analytics: spend, tokens, runs, success rate and latency over a date range.

USD amounts are the service's integer micro-dollars divided by 10^6, so they
are exact to six decimals; the dashboard shows them as `$` with six decimals.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from atom_core.analytics import reports
from atom_core.context import Ctx
from atom_core.interfaces.api.deps import current_ctx

router = APIRouter(prefix="/api/v1", tags=["analytics"])


@router.get("/analytics/summary")
async def analytics_summary(
    since: str | None = Query(None, description="First UTC day included, YYYY-MM-DD (default: 30 days before until)"),
    until: str | None = Query(None, description="First UTC day NOT included, YYYY-MM-DD (default: tomorrow)"),
    ctx: Ctx = Depends(current_ctx),
) -> dict[str, Any]:
    """Totals, spend per day by model, tokens per day, and per model and per agent:
    spend, runs, success rate (succeeded / finished) and latency p50/p95 (ms)."""
    return summary_out(await reports.summary(ctx, since, until))


def usd(micros: int) -> float:
    return micros / 1_000_000


def summary_out(summary: reports.Summary) -> dict[str, Any]:
    totals = summary.totals
    return {
        "since": summary.range.since.isoformat(),
        "until": summary.range.until.isoformat(),
        "totals": _runs_out(totals)
        | _usage_out(totals)
        | {"latency_p50_ms": totals.latency_p50_ms, "latency_p95_ms": totals.latency_p95_ms},
        "days": [
            {
                "day": day.day.isoformat(),
                "spend_usd": usd(day.spend_micros),
                "prompt_tokens": day.prompt_tokens,
                "completion_tokens": day.completion_tokens,
                "runs": day.runs,
                "spend_by_model_usd": {model: usd(micros) for model, micros in sorted(day.spend_by_model.items())},
            }
            for day in summary.days
        ],
        "models": [{"model": m.model, "label": m.label, "calls": m.calls} | _usage_out(m) for m in summary.models],
        "agents": [
            {"agent_slug": a.agent_slug}
            | _runs_out(a)
            | _usage_out(a)
            | {"latency_p50_ms": a.latency_p50_ms, "latency_p95_ms": a.latency_p95_ms}
            for a in summary.agents
        ],
        "workflow_runs": _runs_out(summary.workflows) | {"cost_usd": usd(summary.workflows.cost_micros)},
        "recent_runs": [
            {
                "run_id": str(run.id),
                "agent_slug": run.agent_slug,
                "status": run.status,
                "model": run.model,
                "prompt_tokens": run.prompt_tokens,
                "completion_tokens": run.completion_tokens,
                "cost_usd": usd(run.cost_micros),
                "latency_ms": run.latency_ms,
                "created_at": run.created_at,
            }
            for run in summary.recent_runs
        ],
    }


def _runs_out(counts: reports.RunCounts) -> dict[str, Any]:
    return {
        "runs": counts.runs,
        "finished": counts.finished,
        "succeeded": counts.succeeded,
        "failed": counts.failed,
        "cancelled": counts.cancelled,
        "success_rate": counts.success_rate,
    }


def _usage_out(usage: reports.ModelUsage | reports.AgentUsage | reports.Totals) -> dict[str, Any]:
    out: dict[str, Any] = {
        "spend_usd": usd(usage.spend_micros),
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
    }
    if not isinstance(usage, reports.ModelUsage):
        out["llm_calls"] = usage.llm_calls
    return out
