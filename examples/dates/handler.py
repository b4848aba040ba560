from datetime import datetime, timezone

MONTHS = ["January", "February", "March", "April", "May", "June", "July",
          "August", "September", "October", "November", "December"]


def handler(event, context):
    """Formats an ISO 8601 date (UTC) as iso, locale, date, time or unix."""
    raw = event.get("date", "2023-01-15T12:30:45Z")
    fmt = event.get("format", "iso")
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise ValueError(f"not an ISO 8601 date: {raw!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    if fmt == "iso":
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if fmt == "date":
        return dt.strftime("%Y-%m-%d")
    if fmt == "time":
        return dt.strftime("%H:%M:%S")
    if fmt == "unix":
        return int(dt.timestamp())
    if fmt == "locale":
        hour = dt.hour % 12 or 12
        suffix = "AM" if dt.hour < 12 else "PM"
        return f"{MONTHS[dt.month - 1]} {dt.day}, {dt.year} {hour}:{dt.minute:02d}:{dt.second:02d} {suffix} UTC"
    raise ValueError(f"Unknown format: {fmt} (use iso, locale, date, time or unix)")
