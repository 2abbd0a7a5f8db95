// The ChronoFlow function SDK. Evaluated as a global script in a fresh QuickJS context (which
// each run then restores from a snapshot); its completion value is `install`, which only the
// host can call: install(input) -> start(namespace, evaluated) -> dispatch(command).
//
// Everything the host reads is built from strings, null-prototype objects and intrinsics
// captured here, before user code runs, so prototype pollution (Object.prototype.toJSON, a
// replaced JSON, String or Promise method) changes what the function itself sees, never what
// the host receives. Pollution that breaks the engine's own internals (an index setter on
// Array.prototype trips QuickJS's JSON.stringify) breaks only the function's own run. Every
// record that reaches the host is validated there again regardless.
(function () {
  "use strict";
  const G = globalThis;
  const JSONparse = JSON.parse;
  const JSONstringify = JSON.stringify;
  const freeze = Object.freeze;
  const create = Object.create;
  const keysOf = Object.keys;
  const hasOwn = Object.hasOwn;
  const isFrozen = Object.isFrozen;
  const defineProperty = Object.defineProperty;
  const numberIsFinite = Number.isFinite;
  const Str = String;
  const PromiseCtor = Promise;
  const ErrorCtor = Error;
  const TypeErrorCtor = TypeError;
  const RangeErrorCtor = RangeError;
  const MathObject = Math;
  const apply = Reflect.apply;
  const strSlice = String.prototype.slice;
  const strToLowerCase = String.prototype.toLowerCase;
  const HTTP_OPTIONS = freeze({ headers: 1, json: 1, body: 1 });

  function quote(s) {
    return JSONstringify(Str(s));
  }

  function deepFreeze(value) {
    if (value !== null && typeof value === "object" && !isFrozen(value)) {
      const keys = keysOf(value);
      for (let i = 0; i < keys.length; i++) deepFreeze(value[keys[i]]);
      freeze(value);
    }
    return value;
  }

  function describe(e) {
    let name = "Error";
    let message = "";
    let stack = "";
    try {
      if (e !== null && (typeof e === "object" || typeof e === "function")) {
        name = e.name === undefined ? "Error" : Str(e.name);
        message = e.message === undefined ? Str(e) : Str(e.message);
        stack = e.stack === undefined ? "" : Str(e.stack);
      } else {
        name = "Thrown";
        message = Str(e);
      }
    } catch (_) {
      message = message || "[the thrown value could not be described]";
    }
    return '{"name":' + quote(name) + ',"message":' + quote(message) + ',"stack":' + quote(stack) + "}";
  }

  function describeMessage(e) {
    try {
      return e !== null && typeof e === "object" ? Str(e.message) : Str(e);
    } catch (_) {
      return "?";
    }
  }

  return function install(inputJson) {
    const input = JSONparse(inputJson);
    const limits = input.limits;

    // ---- calls out to the host: a string outbox and id -> {resolve, reject, map}
    let nextId = 1;
    let outbox = "";
    let inflight = 0;
    const waiters = create(null);

    function hostCall(op, args, map) {
      if (inflight >= limits.max_pending_calls) {
        throw new RangeErrorCtor("too many ctx calls pending (" + limits.max_pending_calls + "); await them first");
      }
      const id = nextId++;
      const record = '{"id":' + id + ',"op":"' + op + '","args":' + JSONstringify(args) + "}";
      outbox = outbox === "" ? record : outbox + "," + record;
      inflight++;
      return new PromiseCtor(function (resolve, reject) {
        const w = create(null);
        w.resolve = resolve;
        w.reject = reject;
        w.map = map;
        waiters[id] = w;
      });
    }

    // ---- ctx.log / console: capped, each entry one string
    let logs = "";
    let logBytes = 0;
    let logsDropped = 0;

    function format(v) {
      if (typeof v === "string") return v;
      try {
        if (v instanceof ErrorCtor) return v.stack ? Str(v.name) + ": " + Str(v.message) + "\n" + Str(v.stack) : Str(v);
        if (typeof v === "object" && v !== null) {
          const s = JSONstringify(v);
          return s === undefined ? Str(v) : s;
        }
        return Str(v);
      } catch (_) {
        return "[unprintable]";
      }
    }

    function logLine(prefix, args) {
      if (logBytes >= limits.max_log_bytes) {
        logsDropped++;
        return;
      }
      let line = prefix;
      for (let i = 0; i < args.length; i++) line += (i ? " " : "") + format(args[i]);
      const room = limits.max_log_bytes - logBytes;
      if (line.length > room) {
        line = apply(strSlice, line, [0, room]) + "…";
        logsDropped++;
      }
      logBytes += line.length;
      logs = logs === "" ? quote(line) : logs + "," + quote(line);
    }

    function log(...args) {
      logLine("", args);
    }

    // ---- ctx.state: values kept as JSON text, so reads hand out copies
    const state = create(null);
    const changed = create(null);
    let stateBytes = 0;
    const initial = input.state;
    const initialKeys = keysOf(initial);
    for (let i = 0; i < initialKeys.length; i++) {
      const k = initialKeys[i];
      state[k] = initial[k];
      stateBytes += k.length + initial[k].length;
    }

    function stateKey(method, key) {
      if (typeof key !== "string" || key === "") throw new TypeErrorCtor("ctx.state." + method + ": the key must be a non-empty string");
      return key;
    }

    function stateSet(key, value) {
      stateKey("set", key);
      const old = state[key];
      let text;
      try {
        text = value === undefined ? undefined : JSONstringify(value);
      } catch (e) {
        throw new TypeErrorCtor("ctx.state.set: the value is not JSON-serializable (" + describeMessage(e) + ")");
      }
      if (value !== undefined && text === undefined) throw new TypeErrorCtor("ctx.state.set: the value is not JSON-serializable");
      const size = stateBytes - (old === undefined ? 0 : key.length + old.length) + (text === undefined ? 0 : key.length + text.length);
      if (size > limits.max_state_bytes) throw new RangeErrorCtor("ctx.state.set: state would exceed maxStateBytes (" + limits.max_state_bytes + ")");
      if (text === undefined) delete state[key];
      else state[key] = text;
      stateBytes = size;
      changed[key] = true;
    }

    const stateApi = freeze({
      get(key) {
        const text = state[stateKey("get", key)];
        return text === undefined ? undefined : JSONparse(text);
      },
      set: stateSet,
      delete(key) {
        stateSet(key, undefined);
      },
      keys() {
        return keysOf(state);
      },
    });

    // ---- ctx.http
    function httpResult(v) {
      let data = v.body;
      if (data !== "") {
        try {
          data = JSONparse(data);
        } catch (_) {
          // not JSON: data stays the text
        }
      }
      return { status: v.status, ok: v.status >= 200 && v.status < 300, headers: v.headers, data, truncated: v.truncated };
    }

    function request(method, url, opts) {
      const name = "ctx.http." + apply(strToLowerCase, method, []);
      if (typeof url !== "string") throw new TypeErrorCtor(name + ": url must be a string");
      const args = create(null);
      args.method = method;
      args.url = url;
      const headers = create(null);
      let body = null;
      if (opts !== undefined && opts !== null) {
        if (typeof opts !== "object") throw new TypeErrorCtor(name + ": options must be an object");
        const optionKeys = keysOf(opts);
        for (let i = 0; i < optionKeys.length; i++) {
          if (!hasOwn(HTTP_OPTIONS, optionKeys[i])) {
            throw new TypeErrorCtor(name + ": unknown option " + quote(optionKeys[i]) + " (use { headers, json, body })");
          }
        }
        const h = opts.headers;
        if (h !== undefined && h !== null) {
          if (typeof h !== "object") throw new TypeErrorCtor(name + ": headers must be an object");
          const hk = keysOf(h);
          for (let i = 0; i < hk.length; i++) {
            const v = h[hk[i]];
            if (v !== undefined && v !== null) headers[apply(strToLowerCase, hk[i], [])] = Str(v);
          }
        }
        if (opts.json !== undefined) {
          body = JSONstringify(opts.json);
          if (body === undefined) throw new TypeErrorCtor(name + ": json is not JSON-serializable");
          if (!hasOwn(headers, "content-type")) headers["content-type"] = "application/json";
        } else if (opts.body !== undefined && opts.body !== null) {
          if (typeof opts.body === "string") {
            body = opts.body;
          } else {
            body = JSONstringify(opts.body);
            if (body === undefined) throw new TypeErrorCtor(name + ": body is not JSON-serializable");
            if (!hasOwn(headers, "content-type")) headers["content-type"] = "application/json";
          }
        }
      }
      if (body !== null && body.length > limits.max_http_request_bytes) {
        throw new RangeErrorCtor(name + ": body exceeds maxHttpRequestBytes (" + limits.max_http_request_bytes + ")");
      }
      args.headers = headers;
      args.body = body;
      return hostCall("http", args, httpResult);
    }

    const http = freeze({
      get: (url, opts) => request("GET", url, opts),
      post: (url, opts) => request("POST", url, opts),
      put: (url, opts) => request("PUT", url, opts),
      patch: (url, opts) => request("PATCH", url, opts),
      delete: (url, opts) => request("DELETE", url, opts),
    });

    // ---- ctx.message
    const message = freeze({
      send(msg) {
        if (msg === null || typeof msg !== "object") throw new TypeErrorCtor("ctx.message.send: expected { to, text }");
        const to = msg.to;
        const text = msg.text;
        if (typeof to !== "string" || to === "") throw new TypeErrorCtor("ctx.message.send: `to` must be a non-empty string");
        if (typeof text !== "string") throw new TypeErrorCtor("ctx.message.send: `text` must be a string");
        if (text.length > limits.max_message_chars) {
          throw new RangeErrorCtor("ctx.message.send: text exceeds maxMessageChars (" + limits.max_message_chars + ")");
        }
        const args = create(null);
        args.to = to;
        args.text = text;
        return hostCall("message", args, undefined);
      },
    });

    function sleep(ms) {
      const n = +ms;
      if (!numberIsFinite(n) || n < 0) throw new RangeErrorCtor("ctx.sleep: ms must be a finite number >= 0");
      const args = create(null);
      args.ms = n;
      return hostCall("sleep", args, () => undefined);
    }

    const env = input.env;
    function readEnv(key) {
      if (typeof key !== "string" || !hasOwn(env, key)) {
        throw new ErrorCtor("ctx.env: " + quote(key) + " is not an allowlisted variable");
      }
      return env[key];
    }

    const chrono = input.chrono;
    const ctx = freeze({
      http,
      message,
      state: stateApi,
      log,
      sleep,
      env: readEnv,
      extras: deepFreeze(input.extras),
      chrono: freeze({ id: chrono.id, name: chrono.name, scheduledFor: chrono.scheduledFor, attempt: chrono.attempt }),
    });

    const consoleApi = freeze({
      log,
      info: log,
      debug: log,
      warn: (...args) => logLine("[warn] ", args),
      error: (...args) => logLine("[error] ", args),
    });
    defineProperty(G, "console", { value: consoleApi, writable: true, configurable: true, enumerable: false });

    // Each run starts from a snapshot of this context, so QuickJS's own Math.random state
    // would repeat from run to run: replace it with sfc32 seeded by the host.
    let s0 = input.seed[0] | 0;
    let s1 = input.seed[1] | 0;
    let s2 = input.seed[2] | 0;
    let s3 = input.seed[3] | 0;
    function next32() {
      const t = (((s0 + s1) | 0) + s3) | 0;
      s3 = (s3 + 1) | 0;
      s0 = s1 ^ (s1 >>> 9);
      s1 = (s2 + (s2 << 3)) | 0;
      s2 = (s2 << 21) | (s2 >>> 11);
      s2 = (s2 + t) | 0;
      return t >>> 0;
    }
    function random() {
      return ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992;
    }
    defineProperty(MathObject, "random", { value: random, writable: true, configurable: true, enumerable: false });

    // ---- the run
    let outcome = "";

    // Once per step: the queued host calls, and the outcome once the run has settled.
    function poll() {
      const out = '{"ops":[' + outbox + '],"inflight":' + inflight + ',"outcome":' + (outcome === "" ? "null" : outcome) + "}";
      outbox = "";
      return out;
    }

    // Host replies: [{id, ok, value | error}, ...].
    function settle(repliesJson) {
      const replies = JSONparse(repliesJson);
      for (let i = 0; i < replies.length; i++) {
        const r = replies[i];
        const w = waiters[r.id];
        if (w === undefined) continue;
        delete waiters[r.id];
        inflight--;
        if (r.ok) {
          let v = r.value;
          if (w.map !== undefined) {
            try {
              v = w.map(v);
            } catch (e) {
              w.reject(e);
              continue;
            }
          }
          w.resolve(v);
        } else {
          w.reject(new ErrorCtor(r.error));
        }
      }
      return "";
    }

    function finish() {
      const changedKeys = keysOf(changed);
      let c = "";
      for (let i = 0; i < changedKeys.length; i++) c += (i ? "," : "") + quote(changedKeys[i]);
      const stateKeys = keysOf(state);
      let s = "";
      for (let i = 0; i < stateKeys.length; i++) s += (i ? "," : "") + quote(stateKeys[i]) + ":" + state[stateKeys[i]];
      return '{"logs":[' + logs + '],"logsDropped":' + logsDropped + ',"state":{' + s + '},"changed":[' + c + "]}";
    }

    // The host's single entry point: "p" polls, "s<json>" settles, "f" finishes.
    function dispatch(command) {
      if (command === "p") return poll();
      if (command === "f") return finish();
      return settle(apply(strSlice, command, [1]));
    }

    // `namespace` is the user's module namespace and `evaluated` its evaluation promise; when
    // the module failed to compile or link, `namespace` is undefined and `evaluated` the error.
    return function start(namespace, evaluated) {
      (async function main() {
        let value;
        try {
          if (namespace === undefined) throw evaluated;
          await evaluated;
          const run = namespace.default;
          if (typeof run !== "function") throw new TypeErrorCtor("the module must `export default async function run(ctx)`");
          value = await run(ctx);
        } catch (e) {
          outcome = '{"ok":false,"error":' + describe(e) + "}";
          return;
        }
        let text;
        let note = "";
        try {
          text = value === undefined ? "null" : JSONstringify(value);
          if (text === undefined) {
            text = "null";
            note = "the return value is not JSON-serializable";
          }
        } catch (e) {
          text = "null";
          note = "the return value is not JSON-serializable: " + Str(e);
        }
        let truncated = false;
        if (text.length > limits.max_result_bytes) {
          text = "null";
          truncated = true;
        }
        outcome = '{"ok":true,"value":' + text + ',"truncated":' + truncated + ',"note":' + quote(note) + "}";
      })();
      return dispatch;
    };
  };
})();
