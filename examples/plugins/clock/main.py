"""A tool: the current date and time, which a model cannot know."""

import datetime
import zoneinfo

from eldric import plugin


@plugin.tool(name="current_time", description="The current date and time (ISO 8601) in "
             "an IANA time zone such as Europe/Berlin; UTC when none is given.",
             parameters={"type": "object", "properties": {
                 "timezone": {"type": "string", "description": "IANA zone, e.g. Asia/Tokyo"}}})
def current_time(timezone: str | None = None) -> str:
    name = timezone or plugin.valves.get("timezone") or "UTC"
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"error: unknown time zone {name!r}"
    now = datetime.datetime.now(zone)
    return f"{now.isoformat(timespec='seconds')} ({name}, {now:%A})"


plugin.run()
