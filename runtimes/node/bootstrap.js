'use strict';
// fnbox Node.js bootstrap (protocol v1, see docs/PROTOCOL.md).
//
// Reads one JSON message per line on fd 4, writes one JSON reply per line on fd 3.
// Node 18+, CommonJS, built-ins only. Started by the image entrypoint as
//   exec node /opt/fnbox/bootstrap.js 3>&1 4<&0 </dev/null >/dev/null

const fs = require('fs');
const net = require('net');
const vm = require('vm');
const util = require('util');
const Module = require('module');

const PROTO_IN = 4;
const PROTO_OUT = 3;
const USER_FILENAME = 'handler.js';
const MODULE_FILE = '/opt/fnbox/handler.js';
const MODULE_DIR = '/opt/fnbox';
const TRUNC_MARKER = '\n[fnbox: logs truncated]';
const DEFAULT_MAX_OUTPUT = 6291456;
const DEFAULT_MAX_LOGS = 262144;
const MAX_STACK_CHARS = 65536;
const WRAP_PREFIX = '(function (exports, require, module, __filename, __dirname) { ';
const WRAP_SUFFIX = '\n})';
const BOOTSTRAP_FILE = __filename;

const now = () => performance.now();
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

// ------------------------------------------------------------------------------------------------
// Protocol descriptors. Node has no API for FD_CLOEXEC; when fd 3/4 are pipes we re-open them through
// /proc/self/fd (libuv opens everything O_CLOEXEC) and close the inherited ones, so that children
// spawned by the function do not inherit the protocol channel. Anything unusual: keep the originals.

function reopenCloexec(fd, write) {
  try {
    if (!fs.fstatSync(fd).isFIFO()) return fd;
    const C = fs.constants;
    const path = '/proc/self/fd/' + fd;
    let nfd;
    if (write) {
      // O_NONBLOCK probe: fails with ENXIO instead of blocking when nobody reads the pipe
      const probe = fs.openSync(path, C.O_WRONLY | C.O_NONBLOCK);
      try {
        nfd = fs.openSync(path, C.O_WRONLY); // blocking, like the original
      } finally {
        fs.closeSync(probe);
      }
    } else {
      nfd = fs.openSync(path, C.O_RDONLY | C.O_NONBLOCK); // never blocks; libuv wants it non-blocking
    }
    fs.closeSync(fd);
    return nfd;
  } catch (e) {
    return fd;
  }
}

// Socket channel (docs/PROTOCOL.md): when fnbox names a Unix socket, the protocol runs over it and the
// inherited fd 3/4 (container stdio) are closed. Replies are still written synchronously, to its fd.
const CHANNEL = process.env.FNBOX_CHANNEL;
delete process.env.FNBOX_CHANNEL;
let OUT_FD = -1;
let IN_FD = -1;
if (CHANNEL) {
  for (const fd of [PROTO_OUT, PROTO_IN]) {
    try { fs.closeSync(fd); } catch (e) { /* not open */ }
  }
} else {
  OUT_FD = reopenCloexec(PROTO_OUT, true);
  IN_FD = reopenCloexec(PROTO_IN, false);
}

// JSON.stringify escapes a lone surrogate as \udXXX, which strict JSON readers (serde_json) reject;
// well-formed pairs are written raw, so any \udXXX escape (after an odd run of backslashes) is lone.
const LONE_ESCAPE_RE = /(\\+)u(d[89a-f][0-9a-f]{2})/gi;
function fixLoneSurrogates(text) {
  return text.replace(LONE_ESCAPE_RE, (m, bs) => (bs.length % 2 === 1 ? bs.slice(1) + '\ufffd' : m));
}

function writeOut(text) {
  if (text.indexOf('\\ud') !== -1 || text.indexOf('\\uD') !== -1) text = fixLoneSurrogates(text);
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(OUT_FD, buf, off, buf.length - off);
    } catch (e) {
      if (e.code === 'EAGAIN') {
        Atomics.wait(sleepCell, 0, 0, 1); // pipe full on a non-blocking fd: wait for the host to read
        continue;
      }
      if (e.code === 'EPIPE') process.exit(0); // the host went away
      throw e;
    }
  }
}

function send(obj) {
  writeOut(JSON.stringify(obj) + '\n');
}

function diag(text) {
  try {
    fs.writeSync(2, 'fnbox bootstrap: ' + text + '\n');
  } catch (e) { /* nothing to do */ }
}

// ------------------------------------------------------------------------------------------------
// Log capture: process.stdout/stderr.write (and so console.*) land here, interleaved and bounded.

// `stream`: during an invoke whose host asked for it (load's stream_logs), the call's id as JSON;
// each captured write is then sent at once (a synchronous write) as a `log` message instead of
// being kept for the result, so the host has it even if the call never answers (a loop that
// runs into the timeout blocks the event loop, so nothing could be sent later).
const cap = {
  parts: [],
  size: 0,
  limit: DEFAULT_MAX_LOGS,
  truncated: false,
  stream: null,
  reset(limit) {
    this.parts = [];
    this.size = 0;
    this.limit = limit;
    this.truncated = false;
    this.stream = null;
  },
  keep(s) {
    if (this.stream === null) this.parts.push(s);
    else if (s.length) writeOut('{"type":"log","id":' + this.stream + ',"logs":' + JSON.stringify(s) + '}\n');
  },
  write(s) {
    if (this.truncated || s.length === 0) return;
    const b = Buffer.byteLength(s, 'utf8');
    const room = this.limit - this.size;
    if (b <= room) {
      this.keep(s);
      this.size += b;
    } else {
      if (room > 0) {
        let cut = Buffer.from(s, 'utf8').subarray(0, room).toString('utf8');
        if (cut.endsWith('\ufffd')) cut = cut.slice(0, -1); // a character cut in half
        this.keep(cut);
      }
      this.size = this.limit;
      this.truncated = true;
      if (this.stream !== null) this.keep(TRUNC_MARKER); // the host sees the cut even if no answer comes
    }
  },
  value() {
    const text = this.parts.length === 1 ? this.parts[0] : this.parts.join('');
    return this.truncated ? text + TRUNC_MARKER : text;
  },
};

function captureWrite(chunk, encoding, cb) {
  if (typeof encoding === 'function') {
    cb = encoding;
    encoding = undefined;
  }
  let s;
  if (typeof chunk === 'string') {
    s = (encoding && encoding !== 'utf8' && encoding !== 'utf-8' && Buffer.isEncoding(encoding))
      ? Buffer.from(chunk, encoding).toString('utf8') : chunk;
  } else if (chunk instanceof Uint8Array) {
    s = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
  } else {
    s = String(chunk);
  }
  cap.write(s);
  if (typeof cb === 'function') process.nextTick(cb);
  return true;
}

function installCapture() {
  // Reinstalled at every load/invoke in case the function replaced them.
  const so = process.stdout;
  const se = process.stderr;
  if (so.write !== captureWrite) so.write = captureWrite;
  if (se.write !== captureWrite) se.write = captureWrite;
}

// ------------------------------------------------------------------------------------------------
// Errors

const USER_FRAME_RE = /handler\.js:(\d+):(\d+)/;

function fixLineOneColumns(stack) {
  // Line 1 of the user's code carries the wrapper prefix: shift its columns back.
  return stack.replace(/handler\.js:1:(\d+)/g, (m, c) => 'handler.js:1:' + Math.max(1, Number(c) - WRAP_PREFIX.length));
}

function trimStack(stack) {
  // Drop the frames below the user's code (this bootstrap, node internals driving it).
  const lines = stack.split('\n');
  const out = [];
  for (const line of lines) {
    if (/^\s+at /.test(line) && (line.includes(BOOTSTRAP_FILE) || line.includes('node:vm:'))) break;
    out.push(line);
  }
  // remove trailing node-internal frames that only run the microtask queue
  while (out.length > 1 && /^\s+at .*\(?node:internal\//.test(out[out.length - 1])) out.pop();
  let text = fixLineOneColumns(out.join('\n'));
  if (text.length > MAX_STACK_CHARS) {
    text = text.slice(0, MAX_STACK_CHARS / 2) + '\n...\n' + text.slice(-MAX_STACK_CHARS / 2);
  }
  return text;
}

function errorName(e) {
  try {
    if (e && typeof e.name === 'string' && e.name) return e.name;
    if (e && e.constructor && typeof e.constructor.name === 'string' && e.constructor.name) return e.constructor.name;
  } catch (x) { /* fall through */ }
  return 'Error';
}

function safeString(v) {
  try {
    if (typeof v === 'string') return v;
    if (v !== null && typeof v === 'object') {
      try {
        const j = JSON.stringify(v);
        if (typeof j === 'string') return j;
      } catch (x) { /* not JSON */ }
      return util.inspect(v, { depth: 2, breakLength: Infinity });
    }
    return String(v);
  } catch (x) {
    return '<unprintable value>';
  }
}

function toErr(e) {
  if (!(e instanceof Error) && !(e && typeof e === 'object' && typeof e.message === 'string' && typeof e.stack === 'string')) {
    return { type: 'Error', message: 'non-error value thrown: ' + safeString(e), stack: '' };
  }
  let type = errorName(e);
  let message;
  try {
    message = typeof e.message === 'string' ? e.message : safeString(e.message);
  } catch (x) {
    message = '';
  }
  if (type === 'RangeError' && /allocation failed|out of memory/i.test(message)) type = 'MemoryError';
  const err = { type, message, stack: '' };
  try {
    const stack = typeof e.stack === 'string' ? e.stack : '';
    err.stack = trimStack(stack);
    const m = USER_FRAME_RE.exec(stack);
    if (m) {
      const line = Number(m[1]);
      let col = Number(m[2]);
      if (line === 1) col = Math.max(1, col - WRAP_PREFIX.length);
      err.line = line;
      err.column = col;
    }
  } catch (x) { /* keep what we have */ }
  return err;
}

function syntaxErr(e, code) {
  const err = { type: 'SyntaxError', message: String((e && e.message) || e), stack: '' };
  const stack = (e && typeof e.stack === 'string') ? e.stack : '';
  // V8/node decorate compile errors: "handler.js:LINE\n<source line>\n<spaces>^^^\n\nSyntaxError: ..."
  const m = /^handler\.js:(\d+)\n([^\n]*)\n([ \t]*)\^/.exec(stack);
  if (m) {
    let line = Number(m[1]);
    let col = m[3].length + 1;
    const nlines = code.split('\n').length;
    if (line === 1) col = Math.max(1, col - WRAP_PREFIX.length);
    if (line > nlines) { // error reported on the wrapper's closing line: point at the end of the code
      line = nlines;
      col = code.split('\n')[nlines - 1].length + 1;
    }
    err.line = line;
    err.column = col;
    let src = m[2];
    let caret = m[3];
    if (Number(m[1]) === 1 && src.startsWith(WRAP_PREFIX)) {
      src = src.slice(WRAP_PREFIX.length);
      caret = caret.slice(WRAP_PREFIX.length);
    }
    const idx = stack.indexOf('SyntaxError');
    const caretLine = stack.split('\n')[2].slice(m[3].length);
    err.stack = 'handler.js:' + line + '\n' + src + '\n' + caret + caretLine + '\n\n' +
      (idx >= 0 ? stack.slice(idx).split('\n')[0] : 'SyntaxError: ' + err.message);
  } else {
    const f = /handler\.js:(\d+)(?::(\d+))?/.exec(stack);
    if (f) {
      err.line = Number(f[1]);
      if (f[2]) err.column = Number(f[2]);
    }
    err.stack = stack.split('\n')[0] || '';
  }
  return err;
}

function compileUser(code) {
  if (code.startsWith('#!')) code = '//' + code.slice(2); // shebang: keep line numbers
  return new vm.Script(WRAP_PREFIX + code + WRAP_SUFFIX, { filename: USER_FILENAME });
}

// ------------------------------------------------------------------------------------------------
// Handler context

function makeContext(ctx, id) {
  if (!ctx || typeof ctx !== 'object') ctx = {};
  const deadline = ctx.deadline_ms;
  return {
    executionId: ctx.execution_id !== undefined ? ctx.execution_id : id,
    functionName: ctx.function,
    functionVersion: ctx.version,
    memoryLimitMb: ctx.memory_mb,
    timeoutMs: ctx.timeout_ms,
    deadlineMs: deadline,
    getRemainingTimeMs() {
      return typeof deadline === 'number' ? Math.max(0, Math.floor(deadline - Date.now())) : 0;
    },
  };
}

// ------------------------------------------------------------------------------------------------
// The runtime

const state = {
  loadAttempted: false,
  fn: null,
  thisArg: null,
  maxOutput: DEFAULT_MAX_OUTPUT,
  maxLogs: DEFAULT_MAX_LOGS,
  streamLogs: false,
  current: null, // the invoke in flight: {id, t0, done, finish(err, value)}
};

function handleCheck(msg) {
  if (typeof msg.code !== 'string') {
    send({ type: 'checked', ok: false, error: { type: 'ProtocolError', message: "check: 'code' must be a string", stack: '' } });
    return;
  }
  try {
    compileUser(msg.code);
  } catch (e) {
    send({ type: 'checked', ok: false, error: (e && e.name === 'SyntaxError') ? syntaxErr(e, msg.code) : toErr(e) });
    return;
  }
  send({ type: 'checked', ok: true });
}

function handleLoad(msg) {
  if (state.loadAttempted) {
    send({ type: 'load_failed', logs: '', error: { type: 'ProtocolError', message: 'a function is already loaded in this sandbox', stack: '' } });
    return;
  }
  state.loadAttempted = true;
  const code = msg.code;
  const name = msg.handler || 'handler';
  const env = msg.env || {};
  if (typeof code !== 'string' || typeof name !== 'string' || typeof env !== 'object' || Array.isArray(env)) {
    send({ type: 'load_failed', logs: '', error: { type: 'ProtocolError', message: "load: 'code' and 'handler' must be strings, 'env' an object", stack: '' } });
    return;
  }
  if (Number.isInteger(msg.max_output_bytes) && msg.max_output_bytes > 0) state.maxOutput = msg.max_output_bytes;
  if (Number.isInteger(msg.max_log_bytes) && msg.max_log_bytes >= 0) state.maxLogs = msg.max_log_bytes;
  state.streamLogs = msg.stream_logs === true;
  for (const k of Object.keys(env)) {
    const v = env[k];
    try {
      process.env[k] = typeof v === 'string' ? v : JSON.stringify(v);
    } catch (e) { /* skipped */ }
  }

  let script;
  try {
    script = compileUser(code);
  } catch (e) {
    send({ type: 'load_failed', logs: '', error: (e && e.name === 'SyntaxError') ? syntaxErr(e, code) : toErr(e) });
    return;
  }

  const mod = new Module(MODULE_FILE, null);
  mod.filename = MODULE_FILE;
  mod.paths = Module._nodeModulePaths(MODULE_DIR);
  const req = Module.createRequire(MODULE_FILE);
  const origExports = mod.exports;
  cap.reset(state.maxLogs);
  installCapture();
  resourceBaseline = countResources();
  try {
    const wrapper = script.runInThisContext({ displayErrors: false });
    wrapper.call(origExports, origExports, req, mod, MODULE_FILE, MODULE_DIR);
    mod.loaded = true;
  } catch (e) {
    send({ type: 'load_failed', error: toErr(e), logs: cap.value() });
    return;
  }
  let holder = mod.exports;
  let fn = holder != null ? holder[name] : undefined;
  if (typeof fn !== 'function' && origExports !== holder) {
    holder = origExports;
    fn = holder[name];
  }
  if (typeof fn !== 'function') {
    const what = fn === undefined ? 'no exported function ' + JSON.stringify(name) : JSON.stringify(name) + ' is not a function';
    send({ type: 'load_failed', logs: cap.value(), error: { type: 'HandlerNotFound', message: 'handler.js: ' + what + ' (module.exports.' + name + ' or exports.' + name + ')', stack: '' } });
    return;
  }
  state.fn = fn;
  state.thisArg = holder;
  send({ type: 'loaded', logs: cap.value() });
}

function serializeOutput(value) {
  // -> [json, null] or [null, ERR]
  if (value === undefined) return ['null', null];
  if (typeof value === 'function' || typeof value === 'symbol') {
    return [null, { type: 'SerializationError', message: 'handler returned a ' + typeof value + ', which is not JSON-serializable', stack: '' }];
  }
  let out;
  try {
    out = JSON.stringify(value);
  } catch (e) {
    if (e instanceof RangeError && /string length/i.test(e.message)) {
      return [null, { type: 'OutputTooLarge', message: 'output is too large to serialize (' + e.message + ')', stack: '' }];
    }
    return [null, { type: 'SerializationError', message: 'handler return value is not JSON-serializable: ' + (e && e.message), stack: '' }];
  }
  if (out === undefined) out = 'null'; // e.g. an object whose toJSON returns undefined
  if (out.length > state.maxOutput / 3 || out.length > 65536) { // cheap bound before the exact count
    const n = Buffer.byteLength(out, 'utf8');
    if (n > state.maxOutput) {
      return [null, { type: 'OutputTooLarge', message: 'output is ' + n + ' bytes, the limit is ' + state.maxOutput + ' bytes', stack: '' }];
    }
  }
  return [out, null];
}

// ------------------------------------------------------------------------------------------------
// Leftover work: what the call left running that the bootstrap did not start (processes, timers,
// handles). The host does not reuse a sandbox that reports any (docs/PROTOCOL.md, "leftover").

const MAX_LEFTOVER = 8;
let resourceBaseline = null; // resource type -> count, taken just before the module's code runs

function countResources() {
  const counts = new Map();
  if (typeof process.getActiveResourcesInfo !== 'function') return counts; // Node < 17.3
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) || 0) + 1);
  return counts;
}

function procStat(pid) {
  // [comm, state] of a process, or null when it is gone
  let data;
  try {
    data = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
  } catch (e) {
    return null;
  }
  const close = data.lastIndexOf(')');
  const fields = data.slice(close + 1).trim().split(' ');
  return [data.slice(data.indexOf('(') + 1, close), fields[0]];
}

function childrenOf(pid) {
  const out = [];
  let tids = [];
  try {
    tids = fs.readdirSync('/proc/' + pid + '/task');
  } catch (e) {
    return out;
  }
  for (const tid of tids) {
    try {
      for (const c of fs.readFileSync('/proc/' + pid + '/task/' + tid + '/children', 'utf8').split(' ')) {
        if (c.trim()) out.push(Number(c));
      }
    } catch (e) { /* gone */ }
  }
  return out;
}

function otherProcesses() {
  // Every other process in the pid namespace when we are its init (pid 1, as in a sandbox: orphans are
  // reparented to us), else our descendants (on a host).
  let pids = [];
  if (process.pid === 1) {
    try {
      pids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).filter((p) => p !== 1);
    } catch (e) {
      return [];
    }
  } else {
    const todo = childrenOf(process.pid);
    while (todo.length && pids.length < 4096) {
      const p = todo.pop();
      pids.push(p);
      for (const c of childrenOf(p)) todo.push(c);
    }
  }
  const found = [];
  for (const p of pids.sort((a, b) => a - b)) {
    const st = procStat(p);
    if (st !== null && st[1] !== 'Z' && st[1] !== 'X') found.push('process ' + p + ' (' + st[0] + ')');
  }
  return found;
}

function leftovers() {
  let found = [];
  try {
    found = otherProcesses();
    if (resourceBaseline !== null) {
      for (const [type, n] of countResources()) {
        const extra = n - (resourceBaseline.get(type) || 0);
        if (extra > 0) found.push(extra + ' active ' + type);
      }
    }
  } catch (e) {
    found.push('leftover check failed: ' + (e && e.message));
  }
  if (found.length > MAX_LEFTOVER) found = found.slice(0, MAX_LEFTOVER).concat(['and ' + (found.length - MAX_LEFTOVER) + ' more']);
  return found;
}

function fmtMs(ms) {
  return String(Math.round(ms * 10000) / 10000);
}

function handleInvoke(msg) {
  const id = msg.id;
  const jid = JSON.stringify(id === undefined ? null : id);
  if (state.fn === null) {
    send({ type: 'result', id, status: 'error', logs: '', exec_ms: 0, error: { type: 'ProtocolError', message: 'invoke before a successful load', stack: '' } });
    return;
  }
  cap.reset(state.maxLogs);
  if (state.streamLogs) cap.stream = jid;
  installCapture();
  const inv = { t0: 0, execMs: 0, settled: false, done: false, err: null, value: undefined, finish: null };
  state.current = inv;
  busy = true;
  // The reply goes out from setImmediate, so that a rejection the handler's code left unhandled (or an
  // exception thrown from a callback) surfaces before it and turns this invoke into an error.
  inv.finish = (err, value) => {
    if (inv.done) return;
    if (inv.settled) {
      if (err !== null && inv.err === null) { // a late unhandled error overrides a success
        inv.err = err;
        inv.value = undefined;
      }
      return;
    }
    inv.settled = true;
    inv.execMs = now() - inv.t0;
    inv.err = err;
    inv.value = value;
    setImmediate(() => {
      inv.done = true;
      cap.stream = null; // what is written from now on is not this call's to send
      let err = inv.err;
      let line;
      if (err === null) {
        const [out, serr] = serializeOutput(inv.value);
        inv.value = undefined;
        if (serr === null) {
          line = '{"type":"result","id":' + jid + ',"status":"success","output":' + out + ',"logs":' + JSON.stringify(cap.value()) + ',"exec_ms":' + fmtMs(inv.execMs) + '}\n';
        } else {
          err = serr;
        }
      }
      if (err !== null) {
        line = '{"type":"result","id":' + jid + ',"status":"error","error":' + JSON.stringify(err) + ',"logs":' + JSON.stringify(cap.value()) + ',"exec_ms":' + fmtMs(inv.execMs) + '}\n';
      }
      if (state.current === inv) state.current = null;
      const left = leftovers();
      if (left.length) line = line.slice(0, -2) + ',"leftover":' + JSON.stringify(left) + '}\n';
      writeOut(line);
      busy = false;
      pump();
    });
  };
  const fn = state.fn;
  const ctx = makeContext(msg.context, id);
  let res;
  inv.t0 = now();
  try {
    res = fn.call(state.thisArg, msg.event, ctx);
  } catch (e) {
    inv.finish(toErr(e), null);
    return;
  }
  if (res !== null && (typeof res === 'object' || typeof res === 'function') && typeof res.then === 'function') {
    let p;
    try {
      p = Promise.resolve(res);
    } catch (e) {
      inv.finish(toErr(e), null);
      return;
    }
    p.then((v) => inv.finish(null, v), (e) => inv.finish(toErr(e), null));
  } else {
    inv.finish(null, res);
  }
}

// ------------------------------------------------------------------------------------------------
// Unhandled errors: during an invoke they fail that invoke; otherwise they go to fd 2 and we go on.

process.on('unhandledRejection', (reason) => {
  const inv = state.current;
  if (inv && !inv.done) {
    const err = toErr(reason);
    err.message = (err.message ? err.message : '') + (err.message ? ' ' : '') + '(unhandled promise rejection)';
    inv.finish(err, null);
  } else {
    diag('unhandled rejection outside an invoke: ' + safeString(reason && reason.stack ? reason.stack : reason));
  }
});

process.on('uncaughtException', (e) => {
  const inv = state.current;
  if (inv && !inv.done) {
    inv.finish(toErr(e), null);
  } else {
    diag('uncaught exception outside an invoke: ' + safeString(e && e.stack ? e.stack : e));
  }
});

// ------------------------------------------------------------------------------------------------
// Message loop: a line splitter over fd 4; messages are handled strictly one at a time.

const queue = [];
let qhead = 0;
let busy = false;
let eof = false;

function dispatch(line) {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    send({ type: 'protocol_error', message: 'unparsable message: ' + e.message });
    return;
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    send({ type: 'protocol_error', message: 'message is not a JSON object' });
    return;
  }
  const t = msg.type;
  try {
    if (t === 'invoke') handleInvoke(msg);
    else if (t === 'load') handleLoad(msg);
    else if (t === 'check') handleCheck(msg);
    else send({ type: 'protocol_error', message: 'unknown message type: ' + JSON.stringify(t === undefined ? null : t) });
  } catch (e) { // a bug in the bootstrap itself: report and keep serving
    diag('internal error handling ' + t + ': ' + (e && e.stack));
    const internal = { type: 'InternalError', message: String(e && e.message), stack: '' };
    if (t === 'invoke') {
      if (state.current && !state.current.done) {
        state.current.finish(internal, null);
      } else if (!busy) {
        send({ type: 'result', id: msg.id, status: 'error', error: internal, logs: '', exec_ms: 0 });
      }
    } else if (t === 'load') send({ type: 'load_failed', error: internal, logs: '' });
    else send({ type: 'checked', ok: false, error: internal });
  }
}

function pump() {
  while (!busy && qhead < queue.length) {
    const line = queue[qhead];
    queue[qhead++] = undefined;
    if (qhead === queue.length) {
      queue.length = 0;
      qhead = 0;
    }
    dispatch(line);
  }
  if (!busy && eof && qhead >= queue.length) process.exit(0);
}

let pending = '';
function onData(chunk) {
  let start = 0;
  let data = pending.length ? pending + chunk : chunk;
  let i;
  while ((i = data.indexOf('\n', start)) !== -1) {
    const line = data.slice(start, i);
    start = i + 1;
    if (line.length !== 0 && line.trim().length !== 0) queue.push(line);
  }
  pending = start === 0 ? data : data.slice(start);
  pump();
}

function onEnd() {
  if (pending.trim().length !== 0) queue.push(pending);
  pending = '';
  eof = true;
  pump();
}

function openInput() {
  let stream;
  try {
    stream = new net.Socket({ fd: IN_FD, readable: true, writable: false });
  } catch (e) {
    // not a pipe/socket (e.g. a regular file): fall back to a file stream
    stream = fs.createReadStream(null, { fd: IN_FD, highWaterMark: 65536 });
  }
  readFrom(stream);
}

function readFrom(stream) {
  stream.setEncoding('utf8');
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('error', (e) => {
    diag('protocol input error: ' + e.message);
    onEnd();
  });
}

// libuv starts its thread pool (4 threads) on first use. Starting it before `ready` makes the
// thread count the host takes then the steady state, so a thread the function leaves behind
// shows as one more (docs/PROTOCOL.md, "leftover").
function ready() {
  fs.stat('/', () => {
    send({ type: 'ready', language: 'node', runtime_version: process.versions.node, pid: process.pid });
  });
}

if (CHANNEL) {
  const sock = net.connect(CHANNEL);
  const failed = (e) => {
    diag('cannot connect to ' + CHANNEL + ': ' + e.message);
    process.exit(1);
  };
  sock.once('error', failed);
  sock.once('connect', () => {
    sock.removeListener('error', failed);
    OUT_FD = sock._handle && typeof sock._handle.fd === 'number' ? sock._handle.fd : -1;
    if (OUT_FD < 0) failed(new Error('no file descriptor for the socket'));
    ready();
    readFrom(sock);
  });
} else {
  ready();
  openInput();
}
