"""Runs every example handler on the host's python3 and node against its sample input and
extra cases, so a broken template is caught without Docker. Stdlib only."""
import importlib.util
import json
import os
import subprocess
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def load_json(*parts):
    with open(os.path.join(HERE, *parts)) as f:
        return json.load(f)


MANIFEST = load_json("manifest.json")

# (slug, event, expected) beyond the sample inputs; expected None means "raises".
EXTRA = [
    ("hello", {}, "Hello, World!"),
    ("calculator", {"operation": "divide", "num1": 10, "num2": 4}, 2.5),
    ("calculator", {"operation": "divide", "num1": 10, "num2": 5}, 2),
    ("calculator", {"operation": "multiply", "num1": 3, "num2": -2}, -6),
    ("calculator", {"operation": "divide", "num1": 1, "num2": 0}, None),
    ("calculator", {"operation": "pow", "num1": 1, "num2": 2}, None),
    ("fibonacci", {"n": 0}, 0),
    ("fibonacci", {"n": 20}, 6765),
    ("fibonacci", {"n": -1}, None),
    ("strings", {"text": "Hello World", "operation": "reverse"}, "dlroW olleH"),
    ("strings", {"text": "Hello World", "operation": "length"}, 11),
    ("strings", {"text": "Hello World", "operation": "lowercase"}, "hello world"),
    ("strings", {"text": "x", "operation": "shout"}, None),
    ("json", {"data": {"name": "John", "age": 30}, "operation": "values"}, ["John", 30]),
    ("json", {"data": {"name": "John", "age": 30}, "operation": "items"}, [["name", "John"], ["age", 30]]),
    ("json", {"data": {"a": 1}, "operation": "count"}, 1),
    ("json", {"data": {"a": 1}, "operation": "get", "key": "a"}, 1),
    ("arrays", {"array": [1, 5, 3, 9, 2], "operation": "average"}, 4),
    ("arrays", {"array": [1, 5, 3, 9, 2], "operation": "max"}, 9),
    ("arrays", {"array": [1, 5, 3, 9, 2], "operation": "min"}, 1),
    ("arrays", {"array": [10, 5, 3, 9, 2], "operation": "sort"}, [2, 3, 5, 9, 10]),
    ("arrays", {"array": [1, 5, 3], "operation": "reverse"}, [3, 5, 1]),
    ("arrays", {"array": [], "operation": "max"}, None),
    ("dates", {"date": "2023-01-15T12:30:45Z", "format": "iso"}, "2023-01-15T12:30:45Z"),
    ("dates", {"date": "2023-01-15T12:30:45Z", "format": "date"}, "2023-01-15"),
    ("dates", {"date": "2023-01-15T12:30:45Z", "format": "time"}, "12:30:45"),
    ("dates", {"date": "2023-01-15T12:30:45Z", "format": "unix"}, 1673785845),
    ("dates", {"date": "2023-07-04T00:05:00+02:00", "format": "locale"}, "July 3, 2023 10:05:00 PM UTC"),
    ("dates", {"date": "not a date", "format": "iso"}, None),
]


def run_python(slug, event):
    spec = importlib.util.spec_from_file_location(f"ex_{slug}", os.path.join(HERE, slug, "handler.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        return True, json.loads(json.dumps(mod.handler(event, None)))
    except Exception as e:  # the example raised: that is the expected outcome for error cases
        return False, repr(e)


JS_RUNNER = """
console.log = console.error = () => {};  // the examples log; only the result goes to stdout
const h = require(process.argv[1]);
Promise.resolve().then(() => h.handler(JSON.parse(process.argv[2]), {}))
  .then((r) => process.stdout.write(JSON.stringify({ok: true, value: r === undefined ? null : r})))
  .catch((e) => process.stdout.write(JSON.stringify({ok: false, value: String(e)})));
"""


def run_js(slug, event):
    out = subprocess.run(
        ["node", "-e", JS_RUNNER, os.path.join(HERE, slug, "handler.js"), json.dumps(event)],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    r = json.loads(out)
    return r["ok"], r["value"]


class Examples(unittest.TestCase):
    def check(self, slug, event, expected):
        for lang, run in (("python", run_python), ("javascript", run_js)):
            with self.subTest(slug=slug, lang=lang, event=event):
                ok, value = run(slug, event)
                if expected is None:
                    self.assertFalse(ok, f"{slug}/{lang} should fail on {event}, returned {value!r}")
                else:
                    self.assertTrue(ok, f"{slug}/{lang} failed on {event}: {value}")
                    self.assertEqual(value, expected)
                    self.assertEqual(type(value), type(expected), f"{slug}/{lang}: {value!r}")

    def test_sample_inputs_give_the_documented_outputs(self):
        for entry in MANIFEST:
            self.assertEqual(entry["languages"], ["python", "javascript"])
            sample = load_json(entry["slug"], "input.json")
            self.assertEqual(sample, entry["sample_input"], entry["slug"])
            self.check(entry["slug"], sample, entry["expected_output"])

    def test_more_cases(self):
        for slug, event, expected in EXTRA:
            self.check(slug, event, expected)


if __name__ == "__main__":
    unittest.main()
