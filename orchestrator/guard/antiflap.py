"""The guard's rules, pure: when failing evaluations make an outage, and what to do about one.

- Confirm: at least `confirm_failures` of the last `confirm_of` evaluations failed, and the first
  failure of the episode is at least `confirm_for` old.
- Recovery: the last `confirm_of` evaluations all passed; the episode ends.
- Cooldown: an outage confirmed less than `cooldown` after a switch ended starts no switch.
- Flapping: an outage confirmed less than `flap_window` after the region recovered from an earlier
  episode that failed `confirm_failures` times or more (a blip that recovered, or an outage that
  was not switched away from) starts no switch either.
Both refusals are pages: a person looks. The workflow calls these functions; they only read the
clock they are given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from orchestrator.guard.models import (
    Episode,
    Evaluation,
    GuardInput,
    GuardState,
    GuardStatus,
    Outcome,
)

HISTORY = 50  # ended episodes kept in the state

Decision = Literal["switch", "cooldown", "flapping"]


def in_cooldown(state: GuardState, inp: GuardInput, now: datetime) -> bool:
    """Whether a switch ended less than the cooldown ago."""
    return state.last_switch_at is not None and now - state.last_switch_at < inp.cooldown


def _resting(state: GuardState, inp: GuardInput, now: datetime) -> GuardStatus:
    return GuardStatus.COOLDOWN if in_cooldown(state, inp, now) else GuardStatus.HEALTHY


def observe(state: GuardState, inp: GuardInput, ev: Evaluation, now: datetime) -> bool:
    """Record one evaluation; True when it confirms an outage of the active region."""
    state.evaluations += 1
    state.last, state.last_evaluated_at = ev, now
    state.window = [*state.window, ev.failed][-inp.confirm_of :]
    ep = state.episode
    if ep is None:
        if not ev.failed:
            state.status = _resting(state, inp, now)
            return False
        ep = state.episode = Episode(region=state.active, first_failure_at=now)
    ep.evaluations += 1
    ep.failures += int(ev.failed)
    if len(state.window) == inp.confirm_of and not any(state.window):
        end(state, ep, now, "recovered", ep.decision or "the region passed its checks again")
        if ep.failures >= inp.confirm_failures:
            state.last_recovery_at = now
        state.status = _resting(state, inp, now)
        return False
    if ep.confirmed_at is not None:  # decided already: wait for recovery (or a person)
        return False
    if sum(state.window) >= inp.confirm_failures and now - ep.first_failure_at >= inp.confirm_for:
        ep.confirmed_at = now
        state.status = GuardStatus.CONFIRMED
        return True
    state.status = GuardStatus.SUSPECT
    return False


def decide(state: GuardState, inp: GuardInput, now: datetime) -> tuple[Decision, str]:
    """What to do about the outage just confirmed, and why (one line)."""
    ep = state.episode
    assert ep is not None and ep.confirmed_at is not None
    if state.last_switch_at is not None and in_cooldown(state, inp, now):
        ago = (now - state.last_switch_at).total_seconds()
        return "cooldown", (
            f"{ep.region} is down, but a switch ended {ago:.0f}s ago (cooldown "
            f"{inp.cooldown.total_seconds():.0f}s): no new switch; a person decides"
        )
    if state.last_recovery_at is not None and (
        ep.first_failure_at - state.last_recovery_at < inp.flap_window
    ):
        ago = (ep.first_failure_at - state.last_recovery_at).total_seconds()
        return "flapping", (
            f"{ep.region} is flapping: down again {ago:.0f}s after it recovered (window "
            f"{inp.flap_window.total_seconds():.0f}s): no switch; a person decides"
        )
    return "switch", f"{ep.region} is down: switching to {inp.target(ep.region)}"


def end(state: GuardState, ep: Episode, now: datetime, outcome: Outcome, decision: str) -> None:
    """Close the episode (kept in the history)."""
    ep.ended_at = now
    if ep.outcome is None:
        ep.outcome = outcome
        ep.decision = decision
    state.history = [*state.history, ep][-HISTORY:]
    state.episode = None
