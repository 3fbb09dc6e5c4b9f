"""What a `reload_config` command may change in a running device, and what needs a restart.

Why a fixed list: a running device holds loaded models, an open store, an object-store client
and a broker session built from the config at start. Only settings that are read afresh on
each decision can change under it; the rest are reported as needing a restart, so the fleet
operator is never told a change took effect when it did not.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.config import GotchaConfig

RUNTIME_KEYS = frozenset({
    "rules.min_interval_s", "rules.radius_m", "rules.scene_threshold",  # the lifecycle's rules
    "device.zone",  # the zone the lifecycle files new candidates under
    "store.max_photo_bytes", "store.expired_retention_h",  # retention and the storage cap
    "upload.max_attempts", "upload.backoff_base_s", "upload.backoff_max_s",  # retry policy
    "upload.breaker_failures", "upload.breaker_cooldown_s",
})
"""Dotted config keys a running device applies without a restart."""


@dataclass(frozen=True)
class ReloadPlan:
    """The differences between the running config and the file, split by what can apply."""

    config: GotchaConfig  # the newly read config
    applied: tuple[str, ...]  # changed keys in RUNTIME_KEYS
    needs_restart: tuple[str, ...]  # changed keys that only a restart picks up

    def to_dict(self) -> dict[str, list[str]]:
        return {"applied": list(self.applied), "needs_restart": list(self.needs_restart)}


def changed_keys(old: GotchaConfig, new: GotchaConfig) -> list[str]:
    """Dotted ``section.field`` keys whose values differ, sorted."""
    before, after = old.model_dump(), new.model_dump()
    keys = []
    for section in sorted(after):
        for name in sorted(after[section]):
            if before.get(section, {}).get(name) != after[section][name]:
                keys.append(f"{section}.{name}")
    return keys


def plan_reload(running: GotchaConfig, new: GotchaConfig) -> ReloadPlan:
    """Split the changes from ``running`` to ``new`` into applicable and restart-only."""
    changed = changed_keys(running, new)
    return ReloadPlan(config=new,
                      applied=tuple(k for k in changed if k in RUNTIME_KEYS),
                      needs_restart=tuple(k for k in changed if k not in RUNTIME_KEYS))


def merged_config(running: GotchaConfig, plan: ReloadPlan) -> GotchaConfig:
    """The running config with only the applied keys taken from the new one: what is in
    effect after the reload (restart-only changes stay pending, and are reported again)."""
    merged = running.model_copy(deep=True)
    for key in plan.applied:
        section, name = key.split(".", 1)
        setattr(getattr(merged, section), name, getattr(getattr(plan.config, section), name))
    return merged
