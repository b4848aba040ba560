def handler(event, context):
    """Adds, subtracts, multiplies or divides two numbers."""
    op = event.get("operation", "add")
    a, b = event.get("num1", 0), event.get("num2", 0)
    for value in (a, b):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"num1 and num2 must be numbers, got {value!r}")
    if op == "add":
        result = a + b
    elif op == "subtract":
        result = a - b
    elif op == "multiply":
        result = a * b
    elif op == "divide":
        if b == 0:
            raise ValueError("Division by zero")
        result = a / b
    else:
        raise ValueError(f"Unknown operation: {op} (use add, subtract, multiply or divide)")
    # 10 / 5 is 2, not 2.0: keep whole results whole, as JavaScript does.
    if isinstance(result, float) and result.is_integer():
        result = int(result)
    return result
