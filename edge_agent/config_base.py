"""The base of every configuration section (edge_agent.config holds them all together).

Why its own module: the sections are split over two modules to keep each small, and both
need the same base and the same marker for secret fields.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

SECRET = {"secret": True}
"""``json_schema_extra`` of a secret field: never parsed as JSON, never shown in an error."""


class Section(BaseModel):
    """Base for every section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
