def handler(event, context):
    """keys, values, items, count or get (with "key") of a JSON object."""
    data = event.get("data", {})
    op = event.get("operation", "keys")
    if not isinstance(data, dict):
        raise TypeError("data must be a JSON object")
    if op == "keys":
        return list(data.keys())
    if op == "values":
        return list(data.values())
    if op == "items":
        return [[k, v] for k, v in data.items()]
    if op == "count":
        return len(data)
    if op == "get":
        key = event.get("key")
        if key not in data:
            raise KeyError(f"no key {key!r} in data")
        return data[key]
    raise ValueError(f"Unknown operation: {op} (use keys, values, items, count or get)")
