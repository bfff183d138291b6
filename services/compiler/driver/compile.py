# Trellis model compiler driver. Runs INSIDE the sandbox as `python -I -B -c <this file>`.
#
# Protocol (trellis-compiler's sandbox module reads it):
# - stdin: the model source (UTF-8), already size-checked by the host.
# - stdout (the "result channel"): first the single byte b"R" as soon as this
#   script starts (the host timestamps it to split sandbox start-up from Python
#   time), then one JSON header line, then `xir_len` bytes of serialized XIR.
# - stderr: everything the model prints (fd 1 is redirected there too), so model
#   output can never corrupt the result channel by accident.
#
# The model runs in this interpreter, so a hostile model can tamper with all of
# this. That is fine: the host treats every byte here as untrusted, bounds it,
# and decodes and counts the XIR itself.

import os

# Announce the start before any other import, so the host's "sandbox start"
# timing ends here and not after our own imports.
_result = os.fdopen(os.dup(1), "wb", buffering=0)
_result.write(b"R")
os.dup2(2, 1)

import json  # noqa: E402
import linecache  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402

MAIN_PID = os.getpid()
MODEL = "model.py"
MAX_TEXT = 16 * 1024


def _clip(text):
    if len(text) > MAX_TEXT:
        return text[:MAX_TEXT] + "\n... (truncated)"
    return text


def _finish(header, payload=b""):
    # Only the driver's own process reports; a process the model forked
    # inherits our handlers but must not write a second result.
    if os.getpid() != MAIN_PID:
        os._exit(1)
    header["xir_len"] = len(payload)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    _result.write(json.dumps(header).encode() + b"\n")
    _result.write(payload)
    # Skip atexit hooks and non-daemon threads the model may have left behind.
    os._exit(0)


def _on_cpu_limit(signum, frame):
    _finish({"status": "limit", "limit": "cpu"})


def _safe_str(exc):
    try:
        return _clip(str(exc))
    except Exception:
        return "<exception message could not be rendered>"


def _model_error(exc):
    """Reports `exc` with its traceback trimmed to frames in model.py."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == MODEL]
    line = frames[-1].lineno if frames else None
    if isinstance(exc, SyntaxError) and exc.filename == MODEL:
        line = exc.lineno
    try:
        tail = "".join(traceback.format_exception_only(type(exc), exc))
    except Exception:
        tail = type(exc).__name__ + ": " + _safe_str(exc) + "\n"
    text = ""
    if frames:
        text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
    message = _safe_str(exc)
    if isinstance(exc, SyntaxError) and isinstance(exc.msg, str):
        # str() of a SyntaxError repeats the file and line we report apart.
        message = _clip(exc.msg)
    _finish({
        "status": "error",
        "type": type(exc).__name__,
        "message": message,
        "line": line,
        "traceback": _clip(text + tail),
    })


def _registered_network():
    elements = sys.modules.get("mergexp.elements")
    if elements is None:
        return None
    # `experiment()` writes the module global `__xp`; some callers see it
    # name-mangled, so accept both spellings.
    for key in ("__xp", "_elements__xp"):
        xp = elements.__dict__.get(key)
        if isinstance(xp, dict) and xp.get("topo") is not None:
            return xp["topo"]
    return None


def main():
    signal.signal(signal.SIGXCPU, _on_cpu_limit)
    raw = sys.stdin.buffer.read()
    sys.stdin.close()
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _finish({"status": "error", "type": "UnicodeDecodeError", "message": _safe_str(exc),
                 "line": None, "traceback": ""})
    with open(MODEL, "w", encoding="utf-8") as f:
        f.write(source)
    # Tracebacks read source lines through linecache; seed it so they show the
    # user's lines even if the model deletes or rewrites its own file.
    linecache.cache[MODEL] = (len(source), None, source.splitlines(True), MODEL)

    scope = {"__name__": "__main__", "__file__": MODEL, "__builtins__": __builtins__}
    try:
        code = compile(source, MODEL, "exec", dont_inherit=True)
        exec(code, scope)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            _model_error(exc)
    except BaseException as exc:  # noqa: B036 - the model may raise anything
        _model_error(exc)

    topo = _registered_network()
    if topo is None:
        _finish({"status": "no_experiment"})
    try:
        payload = topo.xir().SerializeToString()
    except BaseException as exc:  # noqa: B036
        _model_error(exc)
    _finish({"status": "ok"}, payload)


try:
    main()
except BaseException as exc:  # noqa: B036 - last resort, e.g. MemoryError in the driver
    try:
        _model_error(exc)
    except BaseException:
        os._exit(3)
