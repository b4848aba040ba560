def fibonacci(n):
    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)


def handler(event, context):
    """The n-th Fibonacci number, computed recursively (on purpose: it is a CPU benchmark)."""
    n = event.get("n", 10)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 35:
        raise ValueError("n must be an integer between 0 and 35")
    return fibonacci(n)
