"""fnbox Python bootstrap (protocol v1, see docs/PROTOCOL.md).

Reads one JSON message per line on fd 4, writes one JSON reply per line on fd 3 (or, when
FNBOX_CHANNEL names a Unix socket, connects to it and speaks the same protocol over it).
Python 3.9+ standard library only. Started by the image entrypoint as
    exec python3 -u /opt/fnbox/bootstrap.py 3>&1 4<&0 </dev/null >/dev/null
"""

import codecs
import io
import json
import os
import sys
import time
import traceback
import types

PROTO_IN = 4
PROTO_OUT = 3
CHANNEL_ENV = "FNBOX_CHANNEL"
USER_FILENAME = "handler.py"
MODULE_FILE = "/opt/fnbox/handler.py"
TRUNC_MARKER = "\n[fnbox: logs truncated]"
DEFAULT_MAX_OUTPUT = 6291456
DEFAULT_MAX_LOGS = 262144
MAX_STACK_CHARS = 65536
CO_COROUTINE = 0x80

_BOOTSTRAP_FILE = os.path.abspath(__file__) if "__file__" in globals() else ""
_perf = time.perf_counter
_time = time.time
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_loads = json.loads
_os_write = os.write


def _jstr(s):
    # JSON for a value we produced ourselves (ids, logs, messages): never fails.
    return json.dumps(s, separators=(",", ":"), ensure_ascii=False, default=str)


def _replace_with_fffd(exc):
    # the UTF-8 encoder takes only ASCII str replacements, bytes are fine: U+FFFD per unencodable char
    return (b"\xef\xbf\xbd" * (exc.end - exc.start), exc.end)


codecs.register_error("fnbox_replace", _replace_with_fffd)


def _send_raw(text):
    data = text.encode("utf-8", "fnbox_replace")  # lone surrogates -> U+FFFD: the line stays valid UTF-8
    try:
        n = _os_write(PROTO_OUT, data)
        if n != len(data):  # partial write (signal): finish it
            view = memoryview(data)[n:]
            while view:
                n = _os_write(PROTO_OUT, view)
                view = view[n:]
    except BrokenPipeError:
        os._exit(0)  # host went away


def _send(obj):
    _send_raw(_jstr(obj) + "\n")


# ------------------------------------------------------------------------------------------------
# Log capture: sys.stdout and sys.stderr both write here during load/invoke (interleaved, bounded).


class _BinaryCapture(object):
    __slots__ = ("_text",)

    def __init__(self, text):
        self._text = text

    def write(self, b):
        self._text.write(bytes(b).decode("utf-8", "replace"))
        return len(b)

    def flush(self):
        pass

    def writable(self):
        return True


class _Capture(object):
    # stream: during an invoke whose host asked for it (load's stream_logs), the call's id as
    # JSON; each captured write is then sent at once as a `log` message instead of being kept
    # for the result, so the host has it even if the call never answers (timeout, OOM kill).
    __slots__ = ("parts", "size", "limit", "truncated", "buffer", "stream")
    encoding = "utf-8"
    errors = "replace"
    newlines = None
    mode = "w"
    name = "<fnbox-logs>"
    closed = False
    line_buffering = False
    write_through = True

    def __init__(self, limit):
        self.parts = []
        self.size = 0
        self.limit = limit
        self.truncated = False
        self.buffer = _BinaryCapture(self)
        self.stream = None

    def reset(self, limit):
        self.parts = []
        self.size = 0
        self.limit = limit
        self.truncated = False
        self.stream = None

    def _keep(self, s):
        if self.stream is None:
            self.parts.append(s)
        elif s:
            _send_raw('{"type":"log","id":%s,"logs":%s}\n' % (self.stream, _jstr(s)))

    def write(self, s):
        if type(s) is not str:
            if not isinstance(s, str):
                raise TypeError("write() argument must be str, not %s" % type(s).__name__)
            s = str(s)
        n = len(s)
        if not n or self.truncated:
            return n
        b = n if s.isascii() else len(s.encode("utf-8", "surrogatepass"))
        room = self.limit - self.size
        if b <= room:
            self._keep(s)
            self.size += b
        else:
            if room > 0:
                self._keep(s.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore"))
            self.size = self.limit
            self.truncated = True
            if self.stream is not None:  # the host sees the cut even if no answer comes
                self._keep(TRUNC_MARKER)
        return n

    def writelines(self, lines):
        for s in lines:
            self.write(s)

    def getvalue(self):
        text = "".join(self.parts)
        if self.truncated:
            text += TRUNC_MARKER
        return text

    def flush(self):
        pass

    def isatty(self):
        return False

    def writable(self):
        return True

    def readable(self):
        return False

    def seekable(self):
        return False

    def fileno(self):
        raise io.UnsupportedOperation("fileno")

    def close(self):
        pass


# ------------------------------------------------------------------------------------------------
# Errors


def _safe_str(e):
    try:
        return str(e)
    except BaseException:
        return "<unprintable %s>" % type(e).__name__


def _trim_tb(tb):
    """Drop the bootstrap's (and asyncio's) frames: start at the first frame of the user's code."""
    t = tb
    while t is not None:
        if t.tb_frame.f_code.co_filename == USER_FILENAME:
            return t
        t = t.tb_next
    # no frame of handler.py (e.g. handler is a builtin): drop just our own frames
    t = tb
    while t is not None and t.tb_frame.f_code.co_filename == _BOOTSTRAP_FILE:
        t = t.tb_next
    return t


def _user_position(tb):
    """(line, column) of the innermost frame in the user's code, column when Python knows it."""
    line = col = None
    t = tb
    while t is not None:
        code = t.tb_frame.f_code
        if code.co_filename == USER_FILENAME:
            line = t.tb_lineno
            col = None
            positions = getattr(code, "co_positions", None)  # 3.11+
            if positions is not None:
                try:
                    i = t.tb_lasti // 2
                    for k, pos in enumerate(positions()):
                        if k == i:
                            if pos[0] == line and pos[2] is not None:
                                col = pos[2] + 1
                            break
                except Exception:
                    col = None
        t = t.tb_next
    return line, col


def _error_from_exception(e, tb=None):
    if tb is None:
        tb = e.__traceback__
    err = {"type": type(e).__name__, "message": _safe_str(e)}
    try:
        trimmed = _trim_tb(tb)
        stack = "".join(traceback.TracebackException(type(e), e, trimmed, compact=True).format()) \
            if sys.version_info >= (3, 10) else \
            "".join(traceback.TracebackException(type(e), e, trimmed).format())
        if len(stack) > MAX_STACK_CHARS:
            stack = stack[: MAX_STACK_CHARS // 2] + "\n...\n" + stack[-MAX_STACK_CHARS // 2:]
        err["stack"] = stack
        line, col = _user_position(tb)
        if line is not None:
            err["line"] = line
            if col is not None:
                err["column"] = col
    except BaseException:  # MemoryError while formatting, or a broken exception object
        err["stack"] = ""
    return err


def _syntax_error(e):
    err = {"type": "SyntaxError", "message": _safe_str(getattr(e, "msg", None) or e)}
    if isinstance(e, SyntaxError):
        if type(e) is not SyntaxError:  # IndentationError, TabError
            err["message"] = "%s: %s" % (type(e).__name__, err["message"])
        if e.lineno:
            err["line"] = e.lineno
        if e.offset:
            err["column"] = e.offset
    try:
        err["stack"] = "".join(traceback.format_exception_only(type(e), e))
    except BaseException:
        err["stack"] = ""
    return err


def _compile(code):
    return compile(code, USER_FILENAME, "exec", dont_inherit=True)


# ------------------------------------------------------------------------------------------------
# Handler context


class Context(object):
    __slots__ = ("execution_id", "function_name", "function_version", "memory_limit_mb", "timeout_ms",
                 "deadline_ms")

    def __init__(self, ctx, execution_id):
        if not isinstance(ctx, dict):
            ctx = {}
        self.execution_id = ctx.get("execution_id", execution_id)
        self.function_name = ctx.get("function")
        self.function_version = ctx.get("version")
        self.memory_limit_mb = ctx.get("memory_mb")
        self.timeout_ms = ctx.get("timeout_ms")
        self.deadline_ms = ctx.get("deadline_ms")

    def get_remaining_time_ms(self):
        d = self.deadline_ms
        if not isinstance(d, (int, float)):
            return 0
        return max(0, int(d - _time() * 1000.0))

    def __repr__(self):
        return "Context(execution_id=%r, function_name=%r, function_version=%r)" % (
            self.execution_id, self.function_name, self.function_version)


# ------------------------------------------------------------------------------------------------
# The runtime


class Runtime(object):
    def __init__(self):
        self.load_attempted = False
        self.fn = None
        self.nargs = 2
        self.is_async = False
        self.loop = None
        self.max_output = DEFAULT_MAX_OUTPUT
        self.max_logs = DEFAULT_MAX_LOGS
        self.stream_logs = False
        self.cap = _Capture(DEFAULT_MAX_LOGS)

    # -- capture --------------------------------------------------------------------------------
    def _begin_capture(self):
        cap = self.cap
        cap.reset(self.max_logs)
        sys.stdout = cap
        sys.stderr = cap
        return cap

    # -- check ----------------------------------------------------------------------------------
    def check(self, msg):
        code = msg.get("code")
        if not isinstance(code, str):
            _send({"type": "checked", "ok": False,
                   "error": {"type": "ProtocolError", "message": "check: 'code' must be a string", "stack": ""}})
            return
        try:
            _compile(code)
        except (SyntaxError, ValueError) as e:
            _send({"type": "checked", "ok": False, "error": _syntax_error(e)})
            return
        except BaseException as e:  # MemoryError / RecursionError on absurd input
            _send({"type": "checked", "ok": False, "error": _error_from_exception(e)})
            return
        _send({"type": "checked", "ok": True})

    # -- load -----------------------------------------------------------------------------------
    def load(self, msg):
        if self.load_attempted:
            _send({"type": "load_failed", "logs": "",
                   "error": {"type": "ProtocolError",
                             "message": "a function is already loaded in this sandbox", "stack": ""}})
            return
        self.load_attempted = True
        code = msg.get("code")
        name = msg.get("handler") or "handler"
        env = msg.get("env") or {}
        if not isinstance(code, str) or not isinstance(name, str) or not isinstance(env, dict):
            _send({"type": "load_failed", "logs": "",
                   "error": {"type": "ProtocolError",
                             "message": "load: 'code' and 'handler' must be strings, 'env' an object",
                             "stack": ""}})
            return
        mo = msg.get("max_output_bytes")
        if isinstance(mo, int) and mo > 0:
            self.max_output = mo
        ml = msg.get("max_log_bytes")
        if isinstance(ml, int) and ml >= 0:
            self.max_logs = ml
        self.stream_logs = msg.get("stream_logs") is True

        for k, v in env.items():
            try:
                os.environ[str(k)] = v if isinstance(v, str) else json.dumps(v)
            except (ValueError, TypeError):
                pass  # e.g. NUL in a name/value: skipped

        try:
            code_obj = _compile(code)
        except (SyntaxError, ValueError) as e:
            _send({"type": "load_failed", "error": _syntax_error(e), "logs": ""})
            return
        except BaseException as e:
            _send({"type": "load_failed", "error": _error_from_exception(e), "logs": ""})
            return

        import linecache
        linecache.cache[USER_FILENAME] = (len(code), None, code.splitlines(True), USER_FILENAME)

        mod = types.ModuleType("handler")
        mod.__file__ = MODULE_FILE
        sys.modules["handler"] = mod
        cap = self._begin_capture()
        try:
            exec(code_obj, mod.__dict__)
        except BaseException as e:
            err = _error_from_exception(e)
            del e
            _send({"type": "load_failed", "error": err, "logs": cap.getvalue()})
            return

        fn = getattr(mod, name, None)
        if fn is None or not callable(fn):
            what = "no function %r" % name if fn is None else "%r is not callable" % name
            _send({"type": "load_failed", "logs": cap.getvalue(),
                   "error": {"type": "HandlerNotFound", "message": "handler.py: %s" % what, "stack": ""}})
            return
        self.fn = fn
        self.nargs = self._arity(fn)
        code_attr = getattr(fn, "__code__", None)
        self.is_async = bool(code_attr is not None and code_attr.co_flags & CO_COROUTINE)
        if self.is_async:
            self._ensure_loop()
        _send({"type": "loaded", "logs": cap.getvalue()})

    @staticmethod
    def _arity(fn):
        try:
            import inspect
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return 2
        n = 0
        for p in params:
            if p.kind == p.VAR_POSITIONAL:
                return 2
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                n += 1
        return min(n, 2)

    def _ensure_loop(self):
        if self.loop is None:
            import asyncio
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
        return self.loop

    # -- invoke ---------------------------------------------------------------------------------
    def invoke(self, msg):
        inv_id = msg.get("id")
        jid = _jstr(inv_id)
        fn = self.fn
        if fn is None:
            _send({"type": "result", "id": inv_id, "status": "error", "logs": "", "exec_ms": 0.0,
                   "error": {"type": "ProtocolError", "message": "invoke before a successful load",
                             "stack": ""}})
            return
        event = msg.get("event")
        nargs = self.nargs
        if nargs == 2:
            args = (event, Context(msg.get("context"), inv_id))
        elif nargs == 1:
            args = (event,)
        else:
            args = ()
        cap = self._begin_capture()
        if self.stream_logs:
            cap.stream = jid
        err = None
        t0 = _perf()
        try:
            if self.is_async:
                res = self.loop.run_until_complete(fn(*args))
            else:
                res = fn(*args)
                if hasattr(res, "__await__") and not isinstance(res, type):
                    res = self._ensure_loop().run_until_complete(res)
        except BaseException as e:
            exec_ms = (_perf() - t0) * 1000.0
            res = None
            if isinstance(e, MemoryError):
                import gc
                gc.collect()
            err = _error_from_exception(e)
            del e
        else:
            exec_ms = (_perf() - t0) * 1000.0
        if err is None:
            try:
                out = _dumps(res)
            except (TypeError, ValueError, OverflowError, RecursionError) as e:
                err = {"type": "SerializationError",
                       "message": "handler return value is not JSON-serializable: %s" % _safe_str(e),
                       "stack": ""}
            except MemoryError as e:
                res = None
                err = {"type": "MemoryError", "message": _safe_str(e) or "out of memory serializing output",
                       "stack": ""}
            else:
                res = None
                n = len(out) if out.isascii() else len(out.encode("utf-8", "fnbox_replace"))
                if n > self.max_output:
                    out = None
                    err = {"type": "OutputTooLarge",
                           "message": "output is %d bytes, the limit is %d bytes" % (n, self.max_output),
                           "stack": ""}
        res = None
        cap.stream = None  # what is written from now on is not this call's to send
        logs = cap.getvalue()
        left = _leftovers(self.loop)
        extra = ',"leftover":%s' % _jstr(left) if left else ""
        if err is None:
            _send_raw('{"type":"result","id":%s,"status":"success","output":%s,"logs":%s,"exec_ms":%s%s}\n'
                      % (jid, out, _jstr(logs), _ms(exec_ms), extra))
        else:
            _send_raw('{"type":"result","id":%s,"status":"error","error":%s,"logs":%s,"exec_ms":%s%s}\n'
                      % (jid, _jstr(err), _jstr(logs), _ms(exec_ms), extra))


def _ms(x):
    return repr(round(x, 4))


# ------------------------------------------------------------------------------------------------
# Leftover work: what the call left running that the bootstrap did not start. The host does not
# reuse a sandbox that reports any (docs/PROTOCOL.md, "leftover").

MAX_LEFTOVER = 8


def _proc_stat(pid):
    """(comm, state, ppid) of a process, or None when it is gone."""
    try:
        with open("/proc/%s/stat" % pid, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    head, _, tail = data.rpartition(")")
    fields = tail.split()
    if len(fields) < 2:
        return None
    return head.partition("(")[2], fields[0], fields[1]


def _children(pid):
    """Direct children of a process, from /proc/PID/task/*/children."""
    out = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            pass
    return out


def _other_processes():
    """Live processes besides this one: every other one in the pid namespace when we are its init
    (pid 1, as in a sandbox: orphans are reparented to us), else our descendants (on a host)."""
    me = os.getpid()
    if me == 1:
        try:
            pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
        except OSError:
            return []
    else:
        pids, todo = [], _children(me)
        while todo and len(pids) < 4096:
            p = todo.pop()
            pids.append(p)
            todo.extend(_children(p))
    found = []
    for p in sorted(pids):
        st = _proc_stat(p)
        if st is not None and st[1] not in ("Z", "X"):  # zombies run nothing
            found.append("process %d (%s)" % (p, st[0]))
    return found


def _task_count():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _leftovers(loop):
    """Processes, threads and asyncio tasks still alive after a call. Never raises."""
    found = []
    try:
        found.extend(_other_processes())
        import threading
        main = threading.main_thread()
        threads = [t for t in threading.enumerate() if t is not main and t.is_alive()]
        found.extend("thread %r" % t.name for t in threads)
        # threads started below the threading module (_thread, C extensions) show only in /proc;
        # one that a join just ended may linger there a moment
        hidden = _task_count() - 1 - len(threads)
        if hidden > 0:
            time.sleep(0.002)
            hidden = _task_count() - 1 - len(threads)
            if hidden > 0:
                found.append("%d thread(s) outside the threading module" % hidden)
        if loop is not None and not loop.is_closed():
            import asyncio
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            if pending:
                found.append("%d pending asyncio task(s)" % len(pending))
    except BaseException as e:  # a broken /proc or a patched module: say so, never crash the call
        found.append("leftover check failed: %s" % _safe_str(e))
    if len(found) > MAX_LEFTOVER:
        found = found[:MAX_LEFTOVER] + ["and %d more" % (len(found) - MAX_LEFTOVER)]
    return found


def _connect_channel():
    """Socket channel (docs/PROTOCOL.md): when fnbox names a Unix socket, connect to it once and
    put it on fd 3 and fd 4, so the rest of the bootstrap is the same for both channels."""
    path = os.environ.pop(CHANNEL_ENV, None)
    if not path:
        return
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    for fd in (PROTO_IN, PROTO_OUT):
        os.dup2(s.fileno(), fd, inheritable=False)
    s.close()


def main():
    _connect_channel()
    for fd in (PROTO_IN, PROTO_OUT):
        try:
            os.set_inheritable(fd, False)
        except OSError:
            pass
    inp = os.fdopen(PROTO_IN, "rb", buffering=65536)
    real_stderr = sys.__stderr__
    rt = Runtime()
    v = sys.version_info
    _send({"type": "ready", "language": "python", "runtime_version": "%d.%d.%d" % (v[0], v[1], v[2]),
           "pid": os.getpid()})
    handlers = {"invoke": rt.invoke, "load": rt.load, "check": rt.check}
    readline = inp.readline
    while True:
        line = readline()
        if not line:
            break
        if line.strip() == b"":
            continue
        try:
            msg = _loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            _send({"type": "protocol_error", "message": "unparsable message: %s" % _safe_str(e)})
            continue
        if type(msg) is not dict:
            _send({"type": "protocol_error", "message": "message is not a JSON object"})
            continue
        mtype = msg.get("type")
        h = handlers.get(mtype) if isinstance(mtype, str) else None
        if h is None:
            _send({"type": "protocol_error", "message": "unknown message type: %s" % _jstr(mtype)})
            continue
        try:
            h(msg)
        except BaseException as e:  # a bug in the bootstrap itself: report, keep serving
            try:
                real_stderr.write("fnbox bootstrap: internal error handling %s\n" % mtype)
                traceback.print_exception(type(e), e, e.__traceback__, file=real_stderr)
            except BaseException:
                pass
            internal = {"type": "InternalError", "message": _safe_str(e), "stack": ""}
            if mtype == "invoke":
                _send({"type": "result", "id": msg.get("id"), "status": "error", "error": internal,
                       "logs": "", "exec_ms": 0.0})
            elif mtype == "load":
                _send({"type": "load_failed", "error": internal, "logs": ""})
            else:
                _send({"type": "checked", "ok": False, "error": internal})
        finally:
            sys.stdout = sys.stderr = rt.cap  # user code may have replaced them
    os._exit(0)


if __name__ == "__main__":
    main()
