"""Runs every example handler on the host's python3 and node against its sample input and
extra cases, so a broken template is caught without Docker. Stdlib only: the examples that have
dependencies (a requirements.txt or package.json next to the handler) get them installed into a
temporary directory first with the host's pip and npm (which reach the registries), put on
sys.path / NODE_PATH; those examples are skipped, saying so, only when pip or npm is absent."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def load_json(*parts):
    with open(os.path.join(HERE, *parts)) as f:
        return json.load(f)


MANIFEST = load_json("manifest.json")
LANGUAGES = {entry["slug"]: entry["languages"] for entry in MANIFEST}
DEPENDENCY_FILE = {"python": "requirements.txt", "javascript": "package.json"}


def dependency_file(slug, lang):
    path = os.path.join(HERE, slug, DEPENDENCY_FILE[lang])
    return path if os.path.exists(path) else None


def have_pip():
    return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0


class Packages:
    """Each dependency example's packages, installed once into a temporary directory."""
    root = None
    python_path = []   # directories put on sys.path
    node_path = []     # node_modules directories for NODE_PATH
    missing = {}       # language -> why its dependency examples are skipped

    @classmethod
    def install(cls):
        if cls.root is not None:
            return
        cls.root = tempfile.mkdtemp(prefix="fnbox-examples-")
        for entry in MANIFEST:
            for lang in entry["languages"]:
                req = dependency_file(entry["slug"], lang)
                if req is None:
                    continue
                target = os.path.join(cls.root, lang, entry["slug"])
                if lang == "python":
                    if not have_pip():
                        cls.missing["python"] = f"pip is not installed for {sys.executable}"
                        continue
                    subprocess.run(
                        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                         "--target", target, "-r", req],
                        check=True, timeout=300, env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"},
                    )
                    cls.python_path.append(target)
                else:
                    if shutil.which("npm") is None:
                        cls.missing["javascript"] = "npm is not installed"
                        continue
                    os.makedirs(target)
                    shutil.copy(req, os.path.join(target, "package.json"))
                    subprocess.run(
                        ["npm", "install", "--silent", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", target],
                        check=True, timeout=300, stdout=subprocess.DEVNULL,
                    )
                    cls.node_path.append(os.path.join(target, "node_modules"))
        for p in cls.python_path:
            if p not in sys.path:
                sys.path.insert(0, p)

    @classmethod
    def remove(cls):
        if cls.root is not None:
            shutil.rmtree(cls.root, ignore_errors=True)

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
    ("yaml", {"yaml": "a: 1\nb: [x, y]\n"}, {"document": {"a": 1, "b": ["x", "y"]}, "humanized": {"a": "1"}, "size": "15 Bytes"}),
    ("yaml", {"yaml": "- 1\n- 2\n"}, {"document": [1, 2], "humanized": {}, "size": "8 Bytes"}),
    ("yaml", {"yaml": "disk_bytes: 1500\nusers: 25000\n"},
     {"document": {"disk_bytes": 1500, "users": 25000}, "humanized": {"disk_bytes": "1.5 kB", "users": "25,000"}, "size": "30 Bytes"}),
    ("yaml", {"yaml": "a: [unclosed\n"}, None),
    ("yaml", {"yaml": "!!python/object/apply:os.system ['true']"}, None),  # safe_load refuses it
    ("timeline", {}, {"days": {}, "first": None, "last": None, "span_hours": 0}),
    ("timeline", {"events": [{"name": "a", "at": "2024-12-31T23:30:00Z"}, {"name": "b", "at": "2025-01-01T00:30:00+01:00"}]},
     {"days": {"2024-12-31": ["23:30 a", "23:30 b"]}, "first": "Tue, 31 Dec 2024 23:30", "last": "Tue, 31 Dec 2024 23:30", "span_hours": 0}),
    ("timeline", {"events": [{"name": "x", "at": "yesterday"}]}, None),
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
    env = dict(os.environ)
    if Packages.node_path:
        env["NODE_PATH"] = os.pathsep.join(Packages.node_path + [env.get("NODE_PATH", "")]).rstrip(os.pathsep)
    out = subprocess.run(
        ["node", "-e", JS_RUNNER, os.path.join(HERE, slug, "handler.js"), json.dumps(event)],
        capture_output=True, text=True, timeout=30, check=True, env=env,
    ).stdout
    r = json.loads(out)
    return r["ok"], r["value"]


class Examples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        Packages.install()

    @classmethod
    def tearDownClass(cls):
        Packages.remove()

    def check(self, slug, event, expected):
        for lang, run in (("python", run_python), ("javascript", run_js)):
            if lang not in LANGUAGES[slug]:
                continue
            with self.subTest(slug=slug, lang=lang, event=event):
                if dependency_file(slug, lang) and lang in Packages.missing:
                    self.skipTest(f"{slug}/{lang} has dependencies and {Packages.missing[lang]}")
                ok, value = run(slug, event)
                if expected is None:
                    self.assertFalse(ok, f"{slug}/{lang} should fail on {event}, returned {value!r}")
                else:
                    self.assertTrue(ok, f"{slug}/{lang} failed on {event}: {value}")
                    self.assertEqual(value, expected)
                    self.assertEqual(type(value), type(expected), f"{slug}/{lang}: {value!r}")

    def test_sample_inputs_give_the_documented_outputs(self):
        for entry in MANIFEST:
            if dependency_file(entry["slug"], "python") or dependency_file(entry["slug"], "javascript"):
                # An example with dependencies is written for one language, with its file.
                self.assertEqual(len(entry["languages"]), 1, entry["slug"])
                self.assertIsNotNone(dependency_file(entry["slug"], entry["languages"][0]), entry["slug"])
            else:
                self.assertEqual(entry["languages"], ["python", "javascript"])
            for lang in entry["languages"]:
                ext = "py" if lang == "python" else "js"
                self.assertTrue(os.path.exists(os.path.join(HERE, entry["slug"], f"handler.{ext}")), f"{entry['slug']}/{lang}")
            sample = load_json(entry["slug"], "input.json")
            self.assertEqual(sample, entry["sample_input"], entry["slug"])
            self.check(entry["slug"], sample, entry["expected_output"])

    def test_more_cases(self):
        for slug, event, expected in EXTRA:
            self.check(slug, event, expected)


if __name__ == "__main__":
    unittest.main()
