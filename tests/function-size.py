#!/usr/bin/python3
"""Functions fit a screen: no function body in the product's C files
(common/ crypto/ store/ providers/ server/) longer than MAX lines.

Relies on the house layout that tests/format-check.sh enforces: a function's
opening brace and its closing brace stand alone at column 0 (clang-format's
AfterFunction brace wrapping), so the body is the lines between them. Data
initialisers (`... = {`) and type definitions (`struct x {`) are not
functions. Test code is left out: its cases are tables of assertions.

Usage: function-size.py [--max N] [SRCDIR]     (exit 1 and one line per
function over the limit; --selftest checks the checker).
"""
import argparse
import os
import re
import subprocess
import sys

MAX = 60
DIRS = ("common", "crypto", "store", "providers", "server")


def functions(text):
    """(first line number of the signature, its text, body lines) per function."""
    lines = text.split("\n")
    out, start = [], None
    for i, line in enumerate(lines):
        if line.startswith("{") and start is None:
            j = i - 1
            while j > 0 and lines[j][:1] in (" ", "\t", ")") and lines[j].strip():
                j -= 1
            sig = lines[j] if j >= 0 else ""
            start = (j, i, sig)
        elif line.startswith("}") and start is not None:
            j, i0, sig = start
            start = None
            if "=" in sig or re.match(r"^(typedef |static |const )*(struct|enum|union)\b[^(]*$", sig):
                continue
            out.append((j + 1, sig.strip(), i - i0 - 1))
    return out


def check(files, limit):
    problems = []
    for path in files:
        with open(path, errors="replace") as f:
            for line, sig, n in functions(f.read()):
                if n > limit:
                    problems.append("%s:%d: %d lines: %s" % (path, line, n, sig[:80]))
    return problems


def selftest():
    body = "\n".join("  x();" for _ in range(61))
    text = ("static int small(void)\n{\n  return 0;\n}\n\n"
            "static const int table[] = {\n" + body + "\n};\n\n"
            "struct big {\n" + body + "\n};\n\n"
            "enum cs_err\nlong_one(int a,\n         int b)\n{\n" + body + "\n}\n")
    found = functions(text)
    assert [(s, n) for _, s, n in found] == [("static int small(void)", 1), ("long_one(int a,", 61)], found
    print("function-size.py selftest: ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max", type=int, default=MAX)
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("src", nargs="?", default=os.path.join(os.path.dirname(__file__), ".."))
    args = ap.parse_args()
    if args.selftest:
        selftest()
        return 0
    files = subprocess.run(["git", "-C", args.src, "ls-files", "--", *[d + "/*.c" for d in DIRS]],
                           check=True, capture_output=True, text=True).stdout.split()
    problems = check([os.path.join(args.src, f) for f in files], args.max)
    for p in problems:
        print(p)
    print("function-size: %d files, %d functions over %d lines" % (len(files), len(problems), args.max))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
