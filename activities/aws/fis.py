"""AWS Fault Injection Service: a game day's fault on real infrastructure.

The state is this run's experiment: none, active (pending, initiating, running) or ended. apply
starts one from a template (idempotent: the client token is derived from the run and the step, so
a retried or resent start finds the same experiment), verify waits for it to be running; undo
stops it and verify_undo waits for a terminal state. FIS's own stop conditions (CloudWatch alarms
in the template) and action durations still apply on AWS's side.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field

from activities.arns import Arns, Grant
from activities.base import Check, RegionalParams, State, StateStep, StepContext
from activities.errors import StepError

TERMINAL = ("completed", "stopped", "failed", "cancelled")
STARTING = ("pending", "initiating")


class FisParams(RegionalParams):
    template: str = Field(description="Experiment template id, or the value of its Name tag.")


class FisExperiment(StateStep[FisParams]):
    """Runs an AWS FIS experiment for as long as the game day needs it; stops it on undo."""

    name = "fis_experiment"
    fault = True
    poll_interval = 1.0
    actions = (
        "fis:ListExperimentTemplates",
        "fis:StartExperiment",
        "fis:ListExperiments",
        "fis:GetExperiment",
        "fis:StopExperiment",
        "fis:TagResource",
    )

    def describe(self, params: FisParams) -> str:
        return f"AWS FIS experiment from template {params.template}{params.where}"

    def iam_resources(self, params: FisParams, region: str, arns: Arns) -> list[Grant]:
        # the template by its id, or any of the region's when the runbook names it by its tag
        template = params.template if params.template.startswith("EXT") else "*"
        experiments = arns.regional("fis", region, "experiment/*")
        return [
            Grant(("fis:StartExperiment",),
                  (arns.regional("fis", region, f"experiment-template/{template}"), experiments)),
            Grant(("fis:GetExperiment", "fis:StopExperiment", "fis:TagResource"), (experiments,)),
        ]  # fmt: skip

    def resource(self, ctx: StepContext, params: FisParams) -> str:
        return f"fis:{ctx.region_for(params)}:{params.template}"

    def _fis(self, ctx: StepContext, p: FisParams) -> Any:
        return ctx.clients.aws("fis", ctx.region_for(p))

    def _template_id(self, ctx: StepContext, p: FisParams) -> str:
        for t in self._fis(ctx, p).list_experiment_templates()["experimentTemplates"]:
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
        listed = fis.list_experiments(experimentTemplateId=self._template_id(ctx, p))
        for e in listed["experiments"]:
            if (e.get("tags") or {}).get("failover-token") == token:
                return dict(fis.get_experiment(id=e["id"])["experiment"])
        return None

    def preflight(self, ctx: StepContext, params: FisParams) -> None:
        self._template_id(ctx, params)

    def observe(self, ctx: StepContext, params: FisParams) -> State:
        exp = self._experiment(ctx, params)
        if exp is None:
            return {"experiment": "none"}
        status = exp["state"]["status"]
        return {
            "experiment": "ended" if status in TERMINAL else "active",
            "id": exp["id"],
            "status": status,
            "reason": exp["state"].get("reason", ""),
        }

    def snapshot(self, ctx: StepContext, params: FisParams) -> State:
        return {"experiment": "none"}

    def desired(self, ctx: StepContext, params: FisParams, current: State) -> State:
        return {"experiment": "active"}

    def matches(self, observed: State, wanted: State) -> bool:
        if wanted["experiment"] == "none":  # removed: never started, or ended
            return observed["experiment"] in ("none", "ended")
        return bool(observed["experiment"] == "active")

    def in_transition(self, observed: State) -> bool:
        return observed.get("status") in (*STARTING, "stopping")

    def heading_to(self, observed: State, wanted: State) -> bool:
        going = "none" if observed.get("status") == "stopping" else "active"
        return going == wanted["experiment"]

    def dead_end(self, observed: State, wanted: State) -> StepError | None:
        if wanted["experiment"] == "active" and observed["experiment"] == "ended":
            return StepError(
                "FaultEnded",
                f"experiment {observed['id']} is {observed['status']}: {observed['reason']}",
                retryable=False,
            )
        return None

    def write(self, ctx: StepContext, params: FisParams, state: State, current: State) -> None:
        fis = self._fis(ctx, params)
        if state["experiment"] == "none":
            fis.stop_experiment(id=current["id"])
        else:
            fis.start_experiment(
                clientToken=self._token(ctx),
                experimentTemplateId=self._template_id(ctx, params),
                tags={"failover-token": self._token(ctx), "failover-run": ctx.run_id[:256]},
            )

    def ready(self, ctx: StepContext, params: FisParams, observed: State, wanted: State) -> Check:
        if "id" not in observed:
            return Check(ok=True, detail="no experiment was started")
        running = wanted["experiment"] == "none" or observed["status"] == "running"
        return Check(ok=running, detail=f"experiment {observed['id']} {observed['status']}")
