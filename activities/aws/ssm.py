"""SSM Parameter Store: flags (feature flags, write freezes) the application reads."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from activities.arns import Arns, Grant
from activities.base import RegionalParams, State, StateStep, StepContext, require
from activities.errors import missing_ok


class SsmParameterParams(RegionalParams):
    name: str = Field(pattern=r"^/?[A-Za-z0-9_.\-/]+$", description="Parameter name.")
    value: str = Field(description="The value to set (a String parameter).")
    type: Literal["String", "StringList"] = "String"


class SsmParameter(StateStep[SsmParameterParams]):
    """Sets an SSM parameter (for example a feature or write-freeze flag); undo restores it.

    SecureString parameters are refused: their value would be snapshotted into the run's history.
    """

    name = "ssm_parameter"
    actions = ("ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter")

    def _ssm(self, ctx: StepContext, params: SsmParameterParams) -> Any:
        return ctx.clients.aws("ssm", ctx.region_for(params))

    def describe(self, params: SsmParameterParams) -> str:
        return f"set SSM parameter {params.name}{params.where} to {params.value!r}"

    def iam_resources(self, params: SsmParameterParams, region: str, arns: Arns) -> list[Grant]:
        parameter = arns.regional("ssm", region, f"parameter/{params.name.lstrip('/')}")
        return [Grant(self.actions, (parameter,))]

    def resource(self, ctx: StepContext, params: SsmParameterParams) -> str:
        return f"ssm:{ctx.region_for(params)}:{params.name}"

    def preflight(self, ctx: StepContext, params: SsmParameterParams) -> None:
        current = self.preflight_state(ctx, params)
        require(
            current.get("type") != "SecureString",
            "PreflightFailed",
            f"{params.name} is a SecureString: refusing to snapshot a secret",
        )

    def observe(self, ctx: StepContext, params: SsmParameterParams) -> State:
        ssm = self._ssm(ctx, params)
        found = missing_ok(lambda: ssm.get_parameter(Name=params.name)["Parameter"])
        if found is None:
            return {"exists": False, "value": None, "type": None}
        return {"exists": True, "value": found["Value"], "type": found["Type"]}

    def desired(self, ctx: StepContext, params: SsmParameterParams, current: State) -> State:
        return {"exists": True, "value": params.value}

    def write(
        self, ctx: StepContext, params: SsmParameterParams, state: State, current: State
    ) -> None:
        ssm = self._ssm(ctx, params)
        if state.get("exists"):
            ssm.put_parameter(
                Name=params.name,
                Value=state["value"],
                Type=state.get("type") or current.get("type") or params.type,
                Overwrite=True,
            )
        elif current.get("exists"):
            ssm.delete_parameter(Name=params.name)
