"""Parses a YAML document with PyYAML and describes its numbers with humanize.

Its dependencies (requirements.txt next to this file) are installed into the function's
image when it is created: PyYAML and humanize are not in the standard library.
"""
import humanize
import yaml


def humanized(key, value):
    """Sizes (keys ending in `_bytes`) as "268.4 MB", big counts as "1.2 million"."""
    if key.endswith("_bytes"):
        return humanize.naturalsize(value)
    if abs(value) >= 1_000_000:
        return humanize.intword(value)
    return humanize.intcomma(value)


def handler(event, context=None):
    text = event.get("yaml", "")
    if not isinstance(text, str):
        raise TypeError("`yaml` must be a string holding a YAML document")
    document = yaml.safe_load(text)  # safe_load: no Python objects from tags
    numbers = {}
    if isinstance(document, dict):
        for key, value in document.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                numbers[str(key)] = humanized(str(key), value)
    print(f"parsed {len(text.encode('utf-8'))} bytes of YAML with PyYAML {yaml.__version__}")
    return {
        "document": document,
        "humanized": numbers,
        "size": humanize.naturalsize(len(text.encode("utf-8"))),
    }
