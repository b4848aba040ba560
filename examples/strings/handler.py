def handler(event, context):
    """reverse, uppercase, lowercase or length of a text."""
    text = event.get("text", "")
    op = event.get("operation", "uppercase")
    if not isinstance(text, str):
        raise TypeError("text must be a string")
    operations = {
        "reverse": lambda t: t[::-1],
        "uppercase": str.upper,
        "lowercase": str.lower,
        "length": len,
    }
    if op not in operations:
        raise ValueError(f"Unknown operation: {op} (use {', '.join(operations)})")
    return operations[op](text)
