def handler(event, context):
    """sum, average, max, min, sort or reverse of a list of numbers."""
    array = event.get("array", [])
    op = event.get("operation", "sum")
    if not isinstance(array, list) or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in array):
        raise TypeError("array must be a list of numbers")
    if op in ("average", "max", "min") and not array:
        raise ValueError(f"cannot take the {op} of an empty array")
    if op == "sum":
        return sum(array)
    if op == "average":
        avg = sum(array) / len(array)
        return int(avg) if avg.is_integer() else avg
    if op == "max":
        return max(array)
    if op == "min":
        return min(array)
    if op == "sort":
        return sorted(array)
    if op == "reverse":
        return array[::-1]
    raise ValueError(f"Unknown operation: {op} (use sum, average, max, min, sort or reverse)")
