"""The few places where pyrospan-run needs more of the OpenTelemetry SDK than its public API.

Each one is detected once, on the objects of the SDK in use, and has a public fallback
(or, where OpenTelemetry offers none, a clear answer of "cannot"), so that every release
in the supported range works.  See docs/design.md ("OpenTelemetry's private fields").
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SERVICE_NAME = "service.name"


def rename_service(resource: Any, name: str) -> bool:
    """Give ``resource`` the ``service.name`` ``name`` in place; False if this SDK cannot.

    A Resource is immutable in OpenTelemetry's API, yet it is the one object a
    TracerProvider shares with every tracer it handed out and every span they made, so
    replacing its attributes renames all of them at once.  No public API does that.
    The new attributes are built by the public constructor; only the assignment touches
    the SDK's field, and it is checked through the public ``attributes`` property.
    """
    from opentelemetry.sdk.resources import Resource

    if not isinstance(resource, Resource) or not hasattr(resource, "_attributes"):
        return False
    renamed = Resource({**dict(resource.attributes), SERVICE_NAME: name}, resource.schema_url)
    shared: Any = resource
    try:
        shared._attributes = renamed.attributes
    except (AttributeError, TypeError):
        return False
    return resource.attributes.get(SERVICE_NAME) == name
