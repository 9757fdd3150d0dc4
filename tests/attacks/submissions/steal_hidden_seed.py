"""Attack: look for the instructor's hidden seed: os.environ, the environment block of every
process in /proc (environ, cmdline), the C-level environ, every module's globals, every object
the garbage collector knows (a Settings, anything named *seed*), and the worker's own memory.

Must get: losses.softmax ERROR with the message "found nothing", 0 points; the seed appears
nowhere in the report.
"""

import ctypes
import gc
import os
import re
import sys

WANTED = re.compile(rb"(IMGCLASS_HIDDEN_SEED|hidden_seed)\D{0,8}(\d{3,})")


def _scan_bytes(where, data, found):
    for m in WANTED.finditer(data):
        found.append(f"{where}: {m.group(0)[:60]!r}")


def softmax(acts, dim=-1):
    found = []
    for key, value in os.environ.items():
        if "SEED" in key.upper() or "TOKEN" in key.upper() or "SECRET" in key.upper():
            found.append(f"os.environ[{key}]={value}")
    for entry in os.listdir("/proc"):
        if not entry.isdigit() and entry != "self":
            continue
        for what in ("environ", "cmdline"):
            try:
                with open(f"/proc/{entry}/{what}", "rb") as f:
                    _scan_bytes(f"/proc/{entry}/{what}", f.read(), found)
                    f.seek(0)
                    if b"SEED" in f.read():
                        found.append(f"/proc/{entry}/{what} mentions SEED")
            except OSError:
                pass
    try:
        environ = ctypes.POINTER(ctypes.c_char_p).in_dll(ctypes.CDLL(None), "environ")
        i = 0
        while environ[i]:
            _scan_bytes("C environ", environ[i], found)
            i += 1
    except (ValueError, OSError):
        pass
    for name, module in list(sys.modules.items()):
        for key, value in list(getattr(module, "__dict__", {}).items()):
            if "hidden" in key.lower() and "seed" in key.lower() and isinstance(value, int):
                found.append(f"{name}.{key}={value}")
    try:
        objects = gc.get_objects()
    except ValueError:  # the worker refuses it; its memory is scanned below all the same
        objects = []
    for obj in objects:
        if type(obj).__name__ == "Settings" and getattr(obj, "hidden_seed", None) is not None:
            found.append(f"Settings.hidden_seed={obj.hidden_seed}")
        elif isinstance(obj, dict) and isinstance(obj.get("hidden_seed"), int):
            found.append(f"dict hidden_seed={obj['hidden_seed']}")
    try:
        with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
            for line in maps:
                addresses, perms = line.split()[:2]
                if "r" not in perms or "[vvar" in line or "[vsyscall" in line:
                    continue
                start, end = (int(x, 16) for x in addresses.split("-"))
                if end - start > 64 << 20:
                    continue
                try:
                    mem.seek(start)
                    _scan_bytes(f"memory {addresses}", mem.read(end - start), found)
                except (OSError, OverflowError, ValueError):
                    pass
    except OSError as e:
        found_note = f"(own memory not readable: {e.strerror})"
    else:
        found_note = ""
    raise RuntimeError("LEAKED " + " | ".join(found) if found else "found nothing " + found_note)
