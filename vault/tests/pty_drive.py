#!/usr/bin/env python3
"""Drive a command through a pseudo-terminal (for passphrase prompts that read
/dev/tty, as the age CLI and cvx-vault do).

usage: pty_drive.py SPEC.json

SPEC: {"argv": [...], "stdout": path or null, "transcript": path,
       "timeout": seconds,
       "steps": [{"expect": regex, "send": text, "capture_words": bool or NAME}, ...],
       "words_out": path, "captures_out": path}

The child gets the pty as its controlling terminal and as stdin/stderr; its stdout
goes to the "stdout" file when given (so tests can check that nothing secret reaches
stdout), else to the pty. "send" may contain {words}: the recovery words captured by
an earlier step with capture_words: true (or {NAME} for capture_words: "NAME").
"captures_out" gets every capture as a JSON object. Exit status: the child's, or 124 on a timeout, or
125 when an expected prompt never came.
"""
import json
import os
import pty
import re
import select
import sys
import time


def main():
    spec = json.load(open(sys.argv[1]))
    out_fd = None
    if spec.get("stdout"):
        out_fd = os.open(spec["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    pid, master = pty.fork()
    if pid == 0:
        if out_fd is not None:
            os.dup2(out_fd, 1)
        os.execvp(spec["argv"][0], spec["argv"])
    deadline = time.time() + spec.get("timeout", 60)
    buf = b""
    transcript = b""
    captured = {}
    status = None

    def read_some(wait):
        nonlocal buf, transcript
        r, _, _ = select.select([master], [], [], wait)
        if master in r:
            try:
                data = os.read(master, 4096)
            except OSError:
                return False
            if not data:
                return False
            buf += data
            transcript += data
        return True

    for step in spec["steps"]:
        pat = re.compile(step["expect"].encode(), re.S)
        while True:
            m = pat.search(buf)
            if m:
                break
            if time.time() > deadline:
                status = 124
                break
            if not read_some(0.1):
                # The child closed the terminal before the prompt came.
                status = 125
                break
        if status is not None:
            break
        cap = step.get("capture_words")
        if cap:
            words = re.findall(rb"\d+\.\s+([a-z]+)", m.group(0))
            captured["words" if cap is True else cap] = b" ".join(words).decode()
        buf = buf[m.end():]
        send = step.get("send")
        if send is not None:
            time.sleep(0.05)
            for name, value in captured.items():
                send = send.replace("{" + name + "}", value)
            os.write(master, send.encode())
    while status is None and time.time() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
        read_some(0.1)
    if status is None:
        status = 124
    if status in (124, 125):
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except OSError:
            pass
    while read_some(0):
        pass
    if spec.get("transcript"):
        with open(spec["transcript"], "wb") as f:
            f.write(transcript)
    if spec.get("captures_out"):
        with open(spec["captures_out"], "w") as f:
            json.dump(captured, f)
    if "words" in captured and spec.get("words_out"):
        with open(spec["words_out"], "w") as f:
            f.write(captured["words"])
    sys.exit(status if status >= 0 else 128 - status)


main()
