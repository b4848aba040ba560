def handler(event, context):
    """Greets someone by name."""
    name = event.get("name", "World")
    print(f"greeting {name}")
    return f"Hello, {name}!"
