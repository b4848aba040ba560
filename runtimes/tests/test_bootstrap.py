"""Tests for the fnbox language bootstraps (runtimes/python/bootstrap.py, runtimes/node/bootstrap.js).

Each bootstrap runs directly on the host, wired like in the image: fd 4 = protocol in, fd 3 = protocol out,
fd 0/1 = /dev/null. Standard library only:  python3 -m unittest discover -s runtimes/tests -v
Environment: FNBOX_PYTHON / FNBOX_NODE override the interpreters.
"""

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIMES = os.path.dirname(HERE)
PY_BOOTSTRAP = os.path.join(RUNTIMES, "python", "bootstrap.py")
JS_BOOTSTRAP = os.path.join(RUNTIMES, "node", "bootstrap.js")
PYTHON = os.environ.get("FNBOX_PYTHON") or sys.executable or "python3"
NODE = os.environ.get("FNBOX_NODE") or shutil.which("node")
TIMEOUT = 20.0


def ctx(execution_id="e1", timeout_ms=5000):
    return {"execution_id": execution_id, "function": "fn", "version": 3, "memory_mb": 128,
            "timeout_ms": timeout_ms, "deadline_ms": int(time.time() * 1000) + timeout_ms}


def _high_fd(fd):
    import fcntl
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


class Bootstrap(object):
    """A bootstrap process with fd 3/4 pipes, like the image's /bin/sh wrapper sets them up."""

    def __init__(self, argv):
        in_r, self.in_w = os.pipe()  # host -> bootstrap (its fd 4)
        self.out_r, out_w = os.pipe()  # bootstrap -> host (its fd 3)
        # the child's ends go above 9 first, so that placing them on 3 and 4 cannot clobber one another
        in_r, out_w = _high_fd(in_r), _high_fd(out_w)

        def wire():  # in the child, before exec: fd 3 = protocol out, fd 4 = protocol in (inheritable)
            os.dup2(out_w, 3)
            os.dup2(in_r, 4)

        # close_fds=False: every other descriptor of ours is close-on-exec (os.pipe's default)
        self.proc = subprocess.Popen(argv, close_fds=False, preexec_fn=wire, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(in_r)
        os.close(out_w)
        self.buf = b""
        self.closed = False

    def send_raw(self, data):
        view = memoryview(data)
        while view:
            n = os.write(self.in_w, view)
            view = view[n:]

    def send(self, msg):
        self.send_raw((json.dumps(msg, separators=(",", ":")) + "\n").encode())

    def recv(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 1:]
                return json.loads(line)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no reply within %.0f s" % timeout)
            r, _, _ = select.select([self.out_r], [], [], left)
            if r:
                chunk = os.read(self.out_r, 1 << 20)
                if not chunk:
                    raise EOFError("bootstrap closed fd 3 (exit %r): %s" % (self.proc.poll(), self.stderr_text()))
                self.buf += chunk

    def request(self, msg, timeout=TIMEOUT):
        self.send(msg)
        return self.recv(timeout)

    def close_input(self):
        if not self.closed:
            os.close(self.in_w)
            self.closed = True

    def stderr_text(self):
        try:
            self.proc.wait(timeout=5)
            return self.proc.stderr.read().decode(errors="replace")
        except Exception:
            return "<running>"

    def close(self):
        self.close_input()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.close_channel()
        self.proc.stderr.close()

    def close_channel(self):
        os.close(self.out_r)


class SocketBootstrap(Bootstrap):
    """A bootstrap on the socket channel: it connects to a Unix socket named by FNBOX_CHANNEL, as it
    does in a sandbox whose socket directory fnbox bind-mounts; fd 3/4 are the container's stdio."""

    def __init__(self, argv):
        import socket
        import tempfile
        d = tempfile.mkdtemp(prefix="fnbox-ch-")
        path = os.path.join(d, "ch.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        listener.settimeout(TIMEOUT)
        null_r = _high_fd(os.open(os.devnull, os.O_RDONLY))
        null_w = _high_fd(os.open(os.devnull, os.O_WRONLY))

        def wire():
            os.dup2(null_w, 3)
            os.dup2(null_r, 4)

        env = dict(os.environ, FNBOX_CHANNEL=path)
        self.proc = subprocess.Popen(argv, close_fds=False, preexec_fn=wire, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(null_r)
        os.close(null_w)
        try:
            self.sock, _ = listener.accept()
        finally:
            listener.close()
            shutil.rmtree(d, ignore_errors=True)
        self.sock.setblocking(True)
        self.in_w = self.out_r = self.sock.fileno()
        self.buf = b""
        self.closed = False

    def close_input(self):
        if not self.closed:
            import socket
            self.sock.shutdown(socket.SHUT_WR)
            self.closed = True

    def close_channel(self):
        self.sock.close()


class BootstrapTests(object):
    """Shared tests; subclasses define ARGV, LANG and the code snippets, and CHANNEL."""

    ARGV = None
    LANG = None
    CHANNEL = Bootstrap

    def start(self):
        b = self.CHANNEL(self.ARGV)
        self.addCleanup(b.close)
        ready = b.recv()
        self.assertEqual(ready["type"], "ready")
        return b, ready

    def loaded(self, code, max_output=6291456, max_logs=262144, env=None, stream=False):
        b, _ = self.start()
        msg = {"type": "load", "code": code, "handler": "handler", "env": env or {},
               "max_output_bytes": max_output, "max_log_bytes": max_logs}
        if stream:
            msg["stream_logs"] = True
        r = b.request(msg)
        self.assertEqual(r["type"], "loaded", r)
        return b, r

    def invoke(self, b, event=None, execution_id="e1"):
        r = b.request({"type": "invoke", "id": execution_id, "event": event, "context": ctx(execution_id)})
        self.assertEqual(r["type"], "result", r)
        self.assertEqual(r["id"], execution_id)
        self.assertIsInstance(r["exec_ms"], (int, float))
        return r

    # -- tests --------------------------------------------------------------------------------
    def test_ready(self):
        b, ready = self.start()
        self.assertEqual(ready["language"], self.LANG)
        self.assertIsInstance(ready["runtime_version"], str)
        self.assertRegex(ready["runtime_version"], r"^\d+\.\d+\.\d+")
        self.assertEqual(ready["pid"], b.proc.pid)  # /bin/sh exec'd the interpreter

    def test_eof_exits_zero(self):
        b, _ = self.start()
        b.close_input()
        self.assertEqual(b.proc.wait(timeout=10), 0)

    def test_check_ok_and_never_runs(self):
        b, _ = self.start()
        r = b.request({"type": "check", "code": self.HELLO})
        self.assertEqual(r, {"type": "checked", "ok": True})
        r = b.request({"type": "check", "code": self.CHECK_HAS_SIDE_EFFECT})
        self.assertEqual(r, {"type": "checked", "ok": True})
        # the code above would have crashed the process (exit 7) had it run
        r = b.request({"type": "check", "code": self.HELLO})
        self.assertTrue(r["ok"])

    def test_check_syntax_error_line(self):
        b, _ = self.start()
        r = b.request({"type": "check", "code": self.SYNTAX_ERROR_LINE3})
        self.assertEqual(r["type"], "checked")
        self.assertFalse(r["ok"])
        self.assertEqual(r["error"]["type"], "SyntaxError")
        self.assertEqual(r["error"]["line"], 3)
        self.assertIn("column", r["error"])
        self.assertTrue(r["error"]["message"])

    def test_syntax_error_line1_column(self):
        b, _ = self.start()
        r = b.request({"type": "check", "code": self.SYNTAX_ERROR_LINE1})
        self.assertFalse(r["ok"])
        self.assertEqual(r["error"]["line"], 1)
        self.assertEqual(r["error"]["column"], self.SYNTAX_ERROR_LINE1_COLUMN)

    def test_load_syntax_error(self):
        b, _ = self.start()
        r = b.request({"type": "load", "code": self.SYNTAX_ERROR_LINE3, "handler": "handler", "env": {},
                       "max_output_bytes": 1000, "max_log_bytes": 1000})
        self.assertEqual(r["type"], "load_failed")
        self.assertEqual(r["error"]["type"], "SyntaxError")
        self.assertEqual(r["error"]["line"], 3)

    def test_hello(self):
        b, r = self.loaded(self.HELLO)
        self.assertEqual(r["logs"], "")
        r = self.invoke(b, {"name": "Bob"})
        self.assertEqual(r["status"], "success", r)
        self.assertEqual(r["output"], "Hello, Bob!")
        self.assertEqual(r["logs"], "")

    def test_logs_not_output(self):
        b, r = self.loaded(self.LOGS)
        self.assertEqual(r["logs"], "module loading\n")
        r = self.invoke(b, {"n": 2})
        self.assertEqual(r["status"], "success", r)
        self.assertEqual(r["output"], {"n": 2})
        self.assertEqual(r["logs"], "out 2\nerr 2\nraw\n")
        r = self.invoke(b, {"n": 3}, "e2")  # logs are per invoke
        self.assertEqual(r["logs"], "out 3\nerr 3\nraw\n")

    def test_env_and_context(self):
        b, _ = self.loaded(self.ENV_CTX, env={"GREETING": "hej"})
        r = self.invoke(b, None, "exec-42")
        self.assertEqual(r["status"], "success", r)
        out = r["output"]
        self.assertEqual(out["greeting"], "hej")
        self.assertEqual(out["id"], "exec-42")
        self.assertEqual(out["name"], "fn")
        self.assertEqual(out["version"], 3)
        self.assertEqual(out["memory"], 128)
        self.assertEqual(out["timeout"], 5000)
        self.assertTrue(0 < out["remaining"] <= 5000, out)

    def test_exception(self):
        b, _ = self.loaded(self.RAISES)
        r = self.invoke(b, {})
        self.assertEqual(r["status"], "error")
        err = r["error"]
        self.assertEqual(err["type"], self.RAISES_TYPE)
        self.assertIn(self.RAISES_MESSAGE, err["message"])
        self.assertIn("handler." + ("py" if self.LANG == "python" else "js"), err["stack"])
        self.assertNotIn("bootstrap", err["stack"])
        self.assertEqual(err["line"], self.RAISES_LINE)
        self.assertEqual(r["logs"], "before\n")
        r = self.invoke(b, {}, "e2")  # the sandbox keeps serving
        self.assertEqual(r["status"], "error")

    def test_load_exception(self):
        b, _ = self.start()
        r = b.request({"type": "load", "code": self.LOAD_RAISES, "handler": "handler", "env": {},
                       "max_output_bytes": 1000, "max_log_bytes": 1000})
        self.assertEqual(r["type"], "load_failed")
        self.assertEqual(r["error"]["line"], 2)
        self.assertNotIn("bootstrap", r["error"]["stack"])
        self.assertEqual(r["logs"], "x\n")

    def test_handler_not_found(self):
        b, _ = self.start()
        r = b.request({"type": "load", "code": self.NO_HANDLER, "handler": "handler", "env": {},
                       "max_output_bytes": 1000, "max_log_bytes": 1000})
        self.assertEqual(r["type"], "load_failed")
        self.assertEqual(r["error"]["type"], "HandlerNotFound")

    def test_not_serializable(self):
        for code in self.NOT_JSON:
            with self.subTest(code=code):
                b, _ = self.loaded(code)
                r = self.invoke(b, {})
                self.assertEqual(r["status"], "error", r)
                self.assertEqual(r["error"]["type"], "SerializationError", r)

    def test_async_handler(self):
        b, _ = self.loaded(self.ASYNC)
        for i in range(3):
            r = self.invoke(b, {"x": i}, "e%d" % i)
            self.assertEqual(r["status"], "success", r)
            self.assertEqual(r["output"], {"x": i, "async": True})
            self.assertEqual(r["logs"], "tick\n")
            self.assertGreaterEqual(r["exec_ms"], 1.0)

    def test_async_exception(self):
        b, _ = self.loaded(self.ASYNC_RAISES)
        r = self.invoke(b, {})
        self.assertEqual(r["status"], "error")
        self.assertEqual(r["error"]["type"], self.ASYNC_RAISES_TYPE)
        self.assertNotIn("bootstrap", r["error"]["stack"])

    def test_output_too_large(self):
        b, _ = self.loaded(self.BIG_OUTPUT, max_output=1000)
        r = self.invoke(b, {"n": 10000})
        self.assertEqual(r["status"], "error")
        self.assertEqual(r["error"]["type"], "OutputTooLarge")
        r = self.invoke(b, {"n": 10}, "e2")
        self.assertEqual(r["status"], "success")
        self.assertEqual(r["output"], "x" * 10)

    def streamed_call(self, b, event, execution_id="e1"):
        """Invokes; returns (the `log` messages' texts with the time each came, the result)."""
        t0 = time.monotonic()
        b.send({"type": "invoke", "id": execution_id, "event": event, "context": ctx(execution_id)})
        logs = []
        while True:
            m = b.recv()
            if m["type"] != "log":
                self.assertEqual((m["type"], m["id"]), ("result", execution_id), m)
                return logs, m
            self.assertEqual(m["id"], execution_id, m)
            logs.append((m["logs"], time.monotonic() - t0))

    def test_streamed_logs_leave_as_they_are_written(self):
        # What a call prints reaches the host before it answers: one that then loops until its
        # timeout (and is killed) has not lost it.
        b, _ = self.loaded(self.LOG_THEN_SPIN, stream=True)
        logs, r = self.streamed_call(b, {"s": 1.5})
        self.assertEqual(r["status"], "success", r)
        self.assertEqual("".join(t for t, _ in logs), "before the loop\n")
        self.assertLess(logs[0][1], 1.0, "sent when written, not with the answer")
        self.assertEqual(r["logs"], "", "nothing left to send with the answer")
        # Without stream_logs, everything comes with the answer (older hosts).
        b2, _ = self.loaded(self.LOG_THEN_SPIN)
        r = self.invoke(b2, {"s": 0.01})
        self.assertEqual(r["logs"], "before the loop\n")

    def test_streamed_logs_are_bounded(self):
        b, _ = self.loaded(self.MANY_LOGS, max_logs=100, stream=True)
        logs, r = self.streamed_call(b, {"n": 1000})
        streamed = "".join(t for t, _ in logs)
        self.assertTrue(streamed.endswith("\n[fnbox: logs truncated]"), "the cut is streamed too: " + streamed)
        self.assertEqual(len(streamed[: -len("\n[fnbox: logs truncated]")].encode()), 100)
        self.assertEqual(r["logs"], "\n[fnbox: logs truncated]", "and marked in the answer")
        logs, r = self.streamed_call(b, {"n": 2}, "e2")
        self.assertEqual(("".join(t for t, _ in logs), r["logs"]), ("line 0\nline 1\n", ""))

    def test_logs_truncated(self):
        b, _ = self.loaded(self.MANY_LOGS, max_logs=100)
        r = self.invoke(b, {"n": 1000})
        self.assertEqual(r["status"], "success")
        logs = r["logs"]
        self.assertTrue(logs.endswith("\n[fnbox: logs truncated]"), logs)
        body = logs[: -len("\n[fnbox: logs truncated]")]
        self.assertEqual(len(body.encode()), 100)
        self.assertTrue(body.startswith("line 0\nline 1\n"))
        r = self.invoke(b, {"n": 2}, "e2")
        self.assertEqual(r["logs"], "line 0\nline 1\n")

    def test_logs_truncated_utf8(self):
        b, _ = self.loaded(self.MANY_LOGS_UTF8, max_logs=101)
        r = self.invoke(b, {"n": 200})
        logs = r["logs"]
        self.assertTrue(logs.endswith("\n[fnbox: logs truncated]"), logs)
        body = logs[: -len("\n[fnbox: logs truncated]")]
        self.assertLessEqual(len(body.encode()), 101)
        self.assertNotIn("\ufffd", body)

    def test_second_load_rejected(self):
        b, _ = self.loaded(self.HELLO)
        r = b.request({"type": "load", "code": self.HELLO, "handler": "handler", "env": {},
                       "max_output_bytes": 1000, "max_log_bytes": 1000})
        self.assertEqual(r["type"], "load_failed")
        self.assertEqual(r["error"]["type"], "ProtocolError")
        r = self.invoke(b, {"name": "Ann"})
        self.assertEqual(r["output"], "Hello, Ann!")

    def test_invoke_before_load(self):
        b, _ = self.start()
        r = b.request({"type": "invoke", "id": "x", "event": {}, "context": ctx()})
        self.assertEqual(r["type"], "result")
        self.assertEqual(r["status"], "error")
        self.assertEqual(r["error"]["type"], "ProtocolError")

    def test_protocol_errors_keep_going(self):
        b, _ = self.start()
        r = b.request({"type": "bogus"})
        self.assertEqual(r["type"], "protocol_error")
        self.assertTrue(r["message"])
        b.send_raw(b"this is not json\n")
        self.assertEqual(b.recv()["type"], "protocol_error")
        b.send_raw(b"[1,2,3]\n")
        self.assertEqual(b.recv()["type"], "protocol_error")
        b.send_raw(b'{"no_type":1}\n')
        self.assertEqual(b.recv()["type"], "protocol_error")
        r = b.request({"type": "check", "code": self.HELLO})
        self.assertEqual(r, {"type": "checked", "ok": True})

    def test_pipelined_messages_in_order(self):
        b, _ = self.start()
        lines = [{"type": "load", "code": self.ASYNC, "handler": "handler", "env": {},
                  "max_output_bytes": 1000, "max_log_bytes": 1000}]
        lines += [{"type": "invoke", "id": "p%d" % i, "event": {"x": i}, "context": ctx()} for i in range(5)]
        # one write with every message, and a split line: the line splitter must cope
        data = "".join(json.dumps(m) + "\n" for m in lines).encode()
        b.send_raw(data[:50])
        time.sleep(0.05)
        b.send_raw(data[50:])
        self.assertEqual(b.recv()["type"], "loaded")
        for i in range(5):
            r = b.recv()
            self.assertEqual(r["id"], "p%d" % i)
            self.assertEqual(r["output"], {"x": i, "async": True})

    def test_large_event_and_unicode(self):
        b, _ = self.loaded(self.ECHO)
        event = {"s": "é€😀" * 50000, "n": list(range(1000))}
        r = self.invoke(b, event)
        self.assertEqual(r["status"], "success")
        self.assertEqual(r["output"], event)

    def test_lone_surrogates_become_replacement_chars(self):
        b, _ = self.loaded(self.LONE_SURROGATE)
        b.send({"type": "invoke", "id": "s", "event": {}, "context": ctx()})
        deadline = time.monotonic() + TIMEOUT
        while b"\n" not in b.buf and time.monotonic() < deadline:
            select.select([b.out_r], [], [], 1)
            b.buf += os.read(b.out_r, 1 << 16)
        raw, b.buf = b.buf.split(b"\n", 1)
        raw.decode("utf-8")  # strict UTF-8
        # no lone-surrogate escape (\udXXX after an odd run of backslashes): strict readers reject it
        self.assertIsNone(re.search(rb"(?<!\\)(?:\\\\)*\\u[dD][89a-fA-F]", raw), raw)
        r = json.loads(raw)
        self.assertEqual(r["status"], "success", r)
        self.assertEqual(r["output"], ["\ufffd", "\\ud800", "\U0001F600"])
        self.assertEqual(r["logs"], "a\ufffdb\n")

    def test_protocol_fds_not_inherited(self):
        b, _ = self.loaded(self.CHILD_FDS)
        r = self.invoke(b, {})
        self.assertEqual(r["status"], "success", r)
        self.assertEqual(r["output"].strip(), "", "child process inherited: %r" % r["output"])

    def test_no_leftover_after_clean_calls(self):
        for code in (self.HELLO, self.CHILD_FDS, self.JOINED_WORK):
            with self.subTest(code=code):
                b, _ = self.loaded(code)
                r = self.invoke(b, {"name": "x"})
                self.assertEqual(r["status"], "success", r)
                self.assertNotIn("leftover", r)

    def test_background_process_is_leftover(self):
        b, _ = self.loaded(self.SPAWN_SLEEP)
        r = self.invoke(b, {})
        self.assertEqual(r["status"], "success", r)
        pid = r["output"]
        self.addCleanup(_kill_quietly, pid)
        self.assertTrue(any(x.startswith("process %d (sleep)" % pid) for x in r.get("leftover", [])), r)
        _kill_quietly(pid)
        time.sleep(0.2)  # the bootstrap may not reap it: a zombie is not leftover work
        r = self.invoke(b, {"check": True}, "e2")
        self.assertNotIn("leftover", r)

    def test_pending_timer_or_thread_is_leftover(self):
        b, _ = self.loaded(self.BACKGROUND_WORK)
        r = self.invoke(b, {})
        self.assertEqual(r["status"], "success", r)
        self.assertTrue(any(self.BACKGROUND_WORK_LEFTOVER in x for x in r.get("leftover", [])), r)

    def test_round_trip_1000(self):
        b, _ = self.loaded(self.ECHO)
        n = 1000
        execs = 0.0
        t0 = time.perf_counter()
        for i in range(n):
            b.send({"type": "invoke", "id": "r%d" % i, "event": {"i": i}, "context": ctx()})
            r = b.recv()
            if r["output"] != {"i": i}:
                self.fail(r)
            execs += r["exec_ms"]
        total_ms = (time.perf_counter() - t0) * 1000.0
        mean = total_ms / n
        sys.stderr.write("\n    [%s] %d sequential invokes: mean round trip %.3f ms (handler exec %.4f ms)  "
                         % (self.LANG, n, mean, execs / n))
        self.assertLess(mean, 5.0)


def _kill_quietly(pid):
    import signal
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, os.WNOHANG)  # not our child: ECHILD, harmless
    except OSError:
        pass


class PythonBootstrapTest(BootstrapTests, unittest.TestCase):
    ARGV = [PYTHON, "-u", PY_BOOTSTRAP]
    LANG = "python"
    HELLO = 'def handler(event, context):\n    return "Hello, " + event["name"] + "!"\n'
    CHECK_HAS_SIDE_EFFECT = "import os\nos._exit(7)\ndef handler(e, c):\n    return 1\n"
    SYNTAX_ERROR_LINE3 = "def handler(event, context):\n    x = 1\n    return x +\n"
    SYNTAX_ERROR_LINE1 = "x = = 1\n"
    SYNTAX_ERROR_LINE1_COLUMN = 5
    LOGS = ("import sys\nprint('module loading')\n"
            "def handler(event, context):\n"
            "    print('out', event['n'])\n"
            "    print('err', event['n'], file=sys.stderr)\n"
            "    sys.stdout.write('raw\\n')\n"
            "    return event\n")
    ENV_CTX = ("import os\n"
               "def handler(event, context):\n"
               "    return {'greeting': os.environ['GREETING'], 'id': context.execution_id,\n"
               "            'name': context.function_name, 'version': context.function_version,\n"
               "            'memory': context.memory_limit_mb, 'timeout': context.timeout_ms,\n"
               "            'remaining': context.get_remaining_time_ms()}\n")
    RAISES = "def helper():\n    return 1 / 0\ndef handler(event, context):\n    print('before')\n    return helper()\n"
    RAISES_TYPE = "ZeroDivisionError"
    RAISES_MESSAGE = "division by zero"
    RAISES_LINE = 2
    LOAD_RAISES = "print('x')\nraise ValueError('bad config')\n"
    NO_HANDLER = "def main(event, context):\n    return 1\n"
    NOT_JSON = ["def handler(event, context):\n    return {1, 2}\n",
                "def handler(event, context):\n    return b'bytes'\n",
                "def handler(event, context):\n    return float('nan')\n",
                "def handler(event, context):\n    return object()\n"]
    ASYNC = ("import asyncio\n"
             "async def handler(event, context):\n"
             "    await asyncio.sleep(0.002)\n"
             "    print('tick')\n"
             "    return {'x': event['x'], 'async': True}\n")
    ASYNC_RAISES = "import asyncio\nasync def handler(event, context):\n    await asyncio.sleep(0)\n    raise KeyError('k')\n"
    ASYNC_RAISES_TYPE = "KeyError"
    BIG_OUTPUT = "def handler(event, context):\n    return 'x' * event['n']\n"
    MANY_LOGS = "def handler(event, context):\n    for i in range(event['n']):\n        print('line', i)\n"
    LOG_THEN_SPIN = ("import time\n"
                     "def handler(event, context):\n"
                     "    print('before the loop')\n"
                     "    end = time.monotonic() + event['s']\n"
                     "    while time.monotonic() < end:\n"
                     "        pass\n"
                     "    return 'done'\n")
    MANY_LOGS_UTF8 = "def handler(event, context):\n    for i in range(event['n']):\n        print('é€😀')\n"
    ECHO = "def handler(event, context):\n    return event\n"
    LONE_SURROGATE = "def handler(event):\n    print('a\\ud800b')\n    return ['\\ud800', '\\\\ud800', '\\U0001F600']\n"
    CHILD_FDS = ("import subprocess\n"
                 "def handler(event, context):\n"
                 "    return subprocess.run(['/bin/sh', '-c', 'for f in 3 4; do [ -e /proc/$$/fd/$f ] && echo open$f; done; true'],\n"
                 "                          capture_output=True, text=True).stdout\n")
    JOINED_WORK = ("import threading, asyncio\n"
                   "def handler(event, context):\n"
                   "    t = threading.Thread(target=lambda: None)\n"
                   "    t.start()\n"
                   "    t.join()\n"
                   "    return asyncio.run(asyncio.sleep(0, 'done'))\n")
    SPAWN_SLEEP = ("import subprocess\n"
                   "def handler(event, context):\n"
                   "    if event.get('check'):\n"
                   "        return 'checked'\n"
                   "    return subprocess.Popen(['sleep', '30']).pid\n")
    BACKGROUND_WORK = ("import threading, time\n"
                       "def handler(event, context):\n"
                       "    threading.Thread(target=time.sleep, args=(0.5,), name='lingering').start()\n"
                       "    return 'started'\n")
    BACKGROUND_WORK_LEFTOVER = "thread 'lingering'"

    def test_pending_asyncio_task_is_leftover(self):
        b, _ = self.loaded("import asyncio\n"
                           "async def handler(event):\n"
                           "    asyncio.get_running_loop().create_task(asyncio.sleep(5))\n"
                           "    return 'started'\n")
        r = self.invoke(b, {})
        self.assertEqual(r["status"], "success", r)
        self.assertIn("1 pending asyncio task(s)", r.get("leftover", []), r)

    def test_low_level_thread_is_leftover(self):
        b, _ = self.loaded("import _thread, time\n"
                           "def handler(event):\n"
                           "    _thread.start_new_thread(time.sleep, (0.5,))\n"
                           "    return 'started'\n")
        r = self.invoke(b, {})
        self.assertIn("1 thread(s) outside the threading module", r.get("leftover", []), r)

    def test_one_arg_handler(self):
        b, _ = self.loaded("def handler(event):\n    return event['v'] * 2\n")
        r = self.invoke(b, {"v": 21})
        self.assertEqual(r["output"], 42)

    def test_async_returning_awaitable_from_sync_def(self):
        b, _ = self.loaded("import asyncio\nasync def work(e):\n    await asyncio.sleep(0)\n    return e\n"
                           "def handler(event, context):\n    return work(event)\n")
        r = self.invoke(b, [1, 2])
        self.assertEqual(r["output"], [1, 2])

    def test_module_is_named_handler(self):
        b, _ = self.loaded("import sys\nNAME = __name__\n"
                           "def handler(event):\n    import handler as me\n"
                           "    return [NAME, me is sys.modules['handler'], me.NAME]\n")
        r = self.invoke(b, None)
        self.assertEqual(r["output"], ["handler", True, "handler"])

    def test_memory_error(self):
        b, _ = self.loaded("def handler(event):\n    raise MemoryError()\n")
        r = self.invoke(b, None)
        self.assertEqual(r["error"]["type"], "MemoryError")
        b2, _ = self.loaded("def handler(event):\n    return bytearray(1 << 62)\n")
        r = self.invoke(b2, None)
        self.assertEqual(r["error"]["type"], "MemoryError")

    def test_recursion_error(self):
        b, _ = self.loaded("def handler(event):\n    return handler(event)\n")
        r = self.invoke(b, None)
        self.assertEqual(r["error"]["type"], "RecursionError")
        self.assertLess(len(r["error"]["stack"]), 70000)
        r = self.invoke(b, None, "e2")
        self.assertEqual(r["error"]["type"], "RecursionError")

    def test_syntax_error_stack_and_indentation(self):
        b, _ = self.start()
        r = b.request({"type": "check", "code": "def handler(e):\nreturn 1\n"})
        self.assertEqual(r["error"]["type"], "SyntaxError")
        self.assertEqual(r["error"]["line"], 2)
        self.assertIn("IndentationError", r["error"]["message"])
        self.assertIn("handler.py", r["error"]["stack"])

    def test_system_exit_is_an_error(self):
        b, _ = self.loaded("import sys\ndef handler(event):\n    sys.exit(3)\n")
        r = self.invoke(b, None)
        self.assertEqual(r["error"]["type"], "SystemExit")

    def test_traceback_shows_source(self):
        b, _ = self.loaded(self.RAISES)
        r = self.invoke(b, {})
        stack = r["error"]["stack"]
        self.assertTrue(stack.startswith("Traceback (most recent call last):\n"), stack)
        self.assertIn('File "handler.py", line 5, in handler', stack)
        self.assertIn("return 1 / 0", stack)


class NodeBootstrapTest(BootstrapTests, unittest.TestCase):
    ARGV = [NODE or "node", JS_BOOTSTRAP]
    LANG = "node"
    HELLO = 'exports.handler = (event, context) => "Hello, " + event.name + "!";\n'
    CHECK_HAS_SIDE_EFFECT = "process.exit(7);\nexports.handler = () => 1;\n"
    SYNTAX_ERROR_LINE3 = "exports.handler = (event) => {\n  const x = 1;\n  return x +;\n};\n"
    SYNTAX_ERROR_LINE1 = "let x = = 1;\n"
    SYNTAX_ERROR_LINE1_COLUMN = 9
    LOGS = ("console.log('module loading');\n"
            "exports.handler = (event) => {\n"
            "  console.log('out', event.n);\n"
            "  console.error('err', event.n);\n"
            "  process.stdout.write('raw\\n');\n"
            "  return event;\n"
            "};\n")
    ENV_CTX = ("module.exports.handler = (event, context) => ({\n"
               "  greeting: process.env.GREETING, id: context.executionId, name: context.functionName,\n"
               "  version: context.functionVersion, memory: context.memoryLimitMb, timeout: context.timeoutMs,\n"
               "  remaining: context.getRemainingTimeMs() });\n")
    RAISES = ("function helper() {\n  return null.boom;\n}\n"
              "exports.handler = (event) => {\n  console.log('before');\n  return helper();\n};\n")
    RAISES_TYPE = "TypeError"
    RAISES_MESSAGE = "Cannot read properties of null"
    RAISES_LINE = 2
    LOAD_RAISES = "console.log('x');\nthrow new Error('bad config');\n"
    NO_HANDLER = "exports.main = () => 1;\n"
    NOT_JSON = ["exports.handler = () => 10n;\n",
                "exports.handler = () => { const a = {}; a.self = a; return a; };\n",
                "exports.handler = () => () => 1;\n"]
    ASYNC = ("const { setTimeout: sleep } = require('timers/promises');\n"
             "exports.handler = async (event) => {\n"
             "  await sleep(2);\n"
             "  console.log('tick');\n"
             "  return { x: event.x, async: true };\n"
             "};\n")
    ASYNC_RAISES = "exports.handler = async () => { await null; throw new RangeError('nope'); };\n"
    ASYNC_RAISES_TYPE = "RangeError"
    BIG_OUTPUT = "exports.handler = (e) => 'x'.repeat(e.n);\n"
    MANY_LOGS = "exports.handler = (e) => { for (let i = 0; i < e.n; i++) console.log('line', i); };\n"
    LOG_THEN_SPIN = ("exports.handler = (e) => {\n"
                     "  console.log('before the loop');\n"
                     "  const end = Date.now() + e.s * 1000;\n"
                     "  while (Date.now() < end) {}\n"
                     "  return 'done';\n"
                     "};\n")
    MANY_LOGS_UTF8 = "exports.handler = (e) => { for (let i = 0; i < e.n; i++) console.log('é€😀'); };\n"
    ECHO = "exports.handler = (event) => event;\n"
    LONE_SURROGATE = "exports.handler = () => { console.log('a\\ud800b'); return ['\\ud800', '\\\\ud800', '\\u{1F600}']; };\n"
    CHILD_FDS = ("const cp = require('child_process');\n"
                 "exports.handler = () => cp.execFileSync('/bin/sh', ['-c',\n"
                 "  'for f in 3 4; do [ -e /proc/$$/fd/$f ] && echo open$f; done; true'], { encoding: 'utf8' });\n")
    JOINED_WORK = ("exports.handler = async () => {\n"
                   "  const t = setInterval(() => {}, 1); clearInterval(t);\n"
                   "  await new Promise((r) => setTimeout(r, 5));\n"
                   "  await require('fs').promises.readFile(__filename).catch(() => null);\n"
                   "  return 'done';\n"
                   "};\n")
    SPAWN_SLEEP = ("const cp = require('child_process');\n"
                   "exports.handler = (e) => e.check ? 'checked' : cp.spawn('sleep', ['30'], { stdio: 'ignore' }).pid;\n")
    BACKGROUND_WORK = "exports.handler = () => { setInterval(() => console.log('tick'), 50); return 'started'; };\n"
    BACKGROUND_WORK_LEFTOVER = "1 active Timeout"

    def test_undefined_is_null(self):
        b, _ = self.loaded("exports.handler = () => {};\n")
        r = self.invoke(b, {})
        self.assertEqual(r["status"], "success")
        self.assertIsNone(r["output"])
        b2, _ = self.loaded("exports.handler = async () => undefined;\n")
        self.assertIsNone(self.invoke(b2, {})["output"])

    def test_module_exports_forms(self):
        b, _ = self.loaded("module.exports = { handler: async (e, c) => [typeof require, __filename, c.functionName] };\n")
        r = self.invoke(b, {})
        self.assertEqual(r["output"], ["function", "/opt/fnbox/handler.js", "fn"])

    def test_require_builtin(self):
        b, _ = self.loaded("const crypto = require('crypto');\nconst path = require('node:path');\n"
                           "exports.handler = (e) => crypto.createHash('sha256').update(e.s).digest('hex').slice(0, 8) + path.sep;\n")
        r = self.invoke(b, {"s": "abc"})
        self.assertEqual(r["output"], "ba7816bf/")

    def test_unhandled_rejection_fails_invoke(self):
        b, _ = self.loaded("exports.handler = () => { Promise.reject(new Error('lost')); return 1; };\n")
        r = self.invoke(b, {})
        self.assertEqual(r["status"], "error", r)
        self.assertIn("lost", r["error"]["message"])
        b2, _ = self.loaded("exports.handler = async () => { Promise.reject(new TypeError('lost2'));"
                            " await new Promise((r) => setTimeout(r, 20)); return 1; };\n")
        r = self.invoke(b2, {})
        self.assertEqual(r["status"], "error", r)
        self.assertEqual(r["error"]["type"], "TypeError")

    def test_uncaught_exception_in_timer_fails_invoke(self):
        b, _ = self.loaded("exports.handler = () => new Promise((res) => {"
                           " setTimeout(() => { throw new Error('timer boom'); }, 1); setTimeout(res, 50); });\n")
        r = self.invoke(b, {})
        self.assertEqual(r["status"], "error")
        self.assertIn("timer boom", r["error"]["message"])
        r = self.invoke(b, {}, "e2")
        self.assertEqual(r["status"], "error")

    def test_process_exit_kills_process(self):
        b, _ = self.loaded("exports.handler = () => { process.exit(5); };\n")
        b.send({"type": "invoke", "id": "x", "event": {}, "context": ctx()})
        with self.assertRaises(EOFError):
            b.recv()
        self.assertEqual(b.proc.wait(timeout=10), 5)

    def test_thrown_non_error(self):
        b, _ = self.loaded("exports.handler = () => { throw 'plain string'; };\n")
        r = self.invoke(b, {})
        self.assertEqual(r["status"], "error")
        self.assertIn("plain string", r["error"]["message"])

    def test_runtime_error_line1_column(self):
        b, _ = self.loaded("exports.handler = () => null.x;\n")
        r = self.invoke(b, {})
        self.assertEqual(r["error"]["line"], 1)
        self.assertEqual(r["error"]["column"], 30)
        self.assertIn("handler.js:1:30", r["error"]["stack"])


class PythonSocketBootstrapTest(PythonBootstrapTest):
    """Every Python test again, on the socket channel."""
    CHANNEL = SocketBootstrap


class NodeSocketBootstrapTest(NodeBootstrapTest):
    """Every Node.js test again, on the socket channel."""
    CHANNEL = SocketBootstrap


if NODE is None:
    del NodeBootstrapTest, NodeSocketBootstrapTest

if __name__ == "__main__":
    unittest.main()
