"""AWS Fault Injection Service: a game day's fault on real infrastructure.

apply starts an experiment from a template (idempotent: the client token is derived from the run
and the step, so a retried or replayed apply finds the same experiment), verify waits for it to be
running, undo stops it and verify_undo waits for a terminal state. FIS's own stop conditions
(CloudWatch alarms in the template) and action durations still apply on AWS's side.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field

from activities.aws.common import call
from activities.base import Check, RegionalParams, StepContext, StepParams, StepType
from activities.errors import StepError

TERMINAL = ("completed", "stopped", "failed", "cancelled")


class FisParams(RegionalParams):
    template: str = Field(description="Experiment template id, or the value of its Name tag.")


class FisExperiment(StepType):
    """Runs an AWS FIS experiment for as long as the game day needs it; stops it on undo."""

    name = "fis_experiment"
    mutating = True
    fault = True
    Params = FisParams
    poll_interval = 1.0
    actions = (
        "fis:ListExperimentTemplates",
        "fis:StartExperiment",
        "fis:ListExperiments",
        "fis:GetExperiment",
        "fis:StopExperiment",
        "fis:TagResource",
    )

    def _p(self, params: StepParams) -> FisParams:
        assert isinstance(params, FisParams)
        return params

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        return f"AWS FIS experiment from template {p.template}{p.where}"

    def _fis(self, ctx: StepContext, p: FisParams) -> Any:
        return ctx.clients.aws("fis", ctx.region_for(p))

    def _template_id(self, ctx: StepContext, p: FisParams) -> str:
        fis = self._fis(ctx, p)
        found = call(fis.list_experiment_templates)["experimentTemplates"]
        for t in found:
            if p.template in (t["id"], (t.get("tags") or {}).get("Name")):
                return str(t["id"])
        raise StepError("NotFound", f"no FIS experiment template {p.template!r}{p.where}")

    @staticmethod
    def _token(ctx: StepContext) -> str:
        return hashlib.sha256(f"{ctx.run_id}/{ctx.step_id}".encode()).hexdigest()[:48]

    def _experiment(self, ctx: StepContext, p: FisParams) -> dict[str, Any] | None:
        """This run's experiment (found by the tag apply put on it), if started."""
        fis = self._fis(ctx, p)
        token = self._token(ctx)
        listed = call(fis.list_experiments, experimentTemplateId=self._template_id(ctx, p))
        for e in listed["experiments"]:
            if (e.get("tags") or {}).get("failover-token") == token:
                got = call(fis.get_experiment, id=e["id"])["experiment"]
                return dict(got)
        return None

    def preflight(self, ctx: StepContext, params: StepParams) -> None:
        self._template_id(ctx, self._p(params))

    def snapshot(self, ctx: StepContext, params: StepParams) -> dict[str, Any]:
        return {}

    def apply(self, ctx: StepContext, params: StepParams, snapshot: dict[str, Any]) -> None:
        p = self._p(params)
        if self._experiment(ctx, p) is not None:
            return
        call(
            self._fis(ctx, p).start_experiment,
            clientToken=self._token(ctx),
            experimentTemplateId=self._template_id(ctx, p),
            tags={"failover-token": self._token(ctx), "failover-run": ctx.run_id[:256]},
        )

    def verify(self, ctx: StepContext, params: StepParams, snapshot: dict[str, Any]) -> Check:
        exp = self._experiment(ctx, self._p(params))
        if exp is None:
            return Check(ok=False, detail="experiment not started")
        state = exp["state"]
        if state["status"] in TERMINAL:
            raise StepError(
                "FaultEnded",
                f"experiment {exp['id']} is {state['status']}: {state.get('reason', '')}",
                retryable=False,
            )
        observed = {"experiment": exp["id"], "status": state["status"]}
        return Check(
            ok=state["status"] == "running",
            detail=f"experiment {exp['id']} {state['status']}",
            observed=observed,
        )

    def undo(self, ctx: StepContext, params: StepParams, snapshot: dict[str, Any]) -> None:
        p = self._p(params)
        exp = self._experiment(ctx, p)
        if exp is not None and exp["state"]["status"] not in (*TERMINAL, "stopping"):
            call(self._fis(ctx, p).stop_experiment, id=exp["id"])

    def verify_undo(self, ctx: StepContext, params: StepParams, snapshot: dict[str, Any]) -> Check:
        exp = self._experiment(ctx, self._p(params))
        if exp is None:
            return Check(ok=True, detail="no experiment was started")
        status = exp["state"]["status"]
        return Check(
            ok=status in TERMINAL,
            detail=f"experiment {exp['id']} {status}",
            observed={"experiment": exp["id"], "status": status},
        )
