"""SSM Parameter Store: flags (feature flags, write freezes) the application reads."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from activities.base import RegionalParams, State, StateStep, StepContext, StepParams, require
from activities.errors import classify


class SsmParameterParams(RegionalParams):
    name: str = Field(pattern=r"^/?[A-Za-z0-9_.\-/]+$", description="Parameter name.")
    value: str = Field(description="The value to set (a String parameter).")
    type: Literal["String", "StringList"] = "String"


class SsmParameter(StateStep):
    """Sets an SSM parameter (for example a feature or write-freeze flag); undo restores it.

    SecureString parameters are refused: their value would be snapshotted into the run's history.
    """

    name = "ssm_parameter"
    Params = SsmParameterParams
    actions = ("ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter")

    def _p(self, params: StepParams) -> SsmParameterParams:
        assert isinstance(params, SsmParameterParams)
        return params

    def _ssm(self, ctx: StepContext, params: SsmParameterParams) -> Any:
        return ctx.clients.aws("ssm", ctx.region_for(params))

    def describe(self, params: StepParams) -> str:
        p = self._p(params)
        return f"set SSM parameter {p.name}{p.where} to {p.value!r}"

    def resource(self, ctx: StepContext, params: StepParams) -> str:
        p = self._p(params)
        return f"ssm:{ctx.region_for(p)}:{p.name}"

    def preflight(self, ctx: StepContext, params: StepParams) -> None:
        current = self.observe(ctx, params)
        require(
            current.get("type") != "SecureString",
            "PreflightFailed",
            f"{self._p(params).name} is a SecureString: refusing to snapshot a secret",
        )

    def observe(self, ctx: StepContext, params: StepParams) -> State:
        p = self._p(params)
        ssm = self._ssm(ctx, p)
        try:
            param = ssm.get_parameter(Name=p.name)["Parameter"]
        except ssm.exceptions.ParameterNotFound:
            return {"exists": False, "value": None, "type": None}
        except Exception as exc:
            raise classify(exc) from exc
        return {"exists": True, "value": param["Value"], "type": param["Type"]}

    def desired(self, ctx: StepContext, params: StepParams, current: State) -> State:
        p = self._p(params)
        return {"exists": True, "value": p.value}

    def write(self, ctx: StepContext, params: StepParams, state: State, current: State) -> None:
        p = self._p(params)
        ssm = self._ssm(ctx, p)
        try:
            if state.get("exists"):
                ssm.put_parameter(
                    Name=p.name,
                    Value=state["value"],
                    Type=state.get("type") or current.get("type") or p.type,
                    Overwrite=True,
                )
            elif current.get("exists"):
                ssm.delete_parameter(Name=p.name)
        except Exception as exc:
            raise classify(exc) from exc
