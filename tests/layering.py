#!/usr/bin/python3
"""The dependency rule of DESIGN.md "Layers", checked on the built objects.

    cli -> api -> core -> providers | store | crypto -> common
    (providers may use crypto; store and crypto only common)

Reads every object file of every module library with nm and resolves each
undefined symbol to the object that defines it. It fails when

  1. an object calls (or reads) a symbol defined in a module above it, or in
     a module it may not use (store using crypto, say): one line per symbol,
     "file -> file: symbol";
  2. object files of different modules form a cycle (what 1 implies, reported
     as the cycle so the loop can be read off);
  3. objects within server/ (cli, api, core) form a file-level cycle: one
     direction per pair of files, so that "what does X do" never means
     reading a loop;
  4. an object outside the api library refers to a libmicrohttpd symbol, or
     a source file outside server/api/ (tests/bench/ aside) includes
     libmicrohttpd's header.

Usage: layering.py --src SRCDIR MODULE=LIBRARY.a ...   (ctest passes the
libraries; run with --selftest to check the checker on a made-up graph).
"""
import argparse
import collections
import os
import re
import subprocess
import sys

# Which modules each module may use (the rule, transitively closed).
ALLOWED = {
    "common": set(),
    "crypto": {"common"},
    "store": {"common"},
    "providers": {"crypto", "common"},
    "core": {"providers", "store", "crypto", "common"},
    "api": {"core", "providers", "store", "crypto", "common"},
    "cli": {"api", "core", "providers", "store", "crypto", "common"},
}
SERVER = {"cli", "api", "core"}


def read_objects(libs):
    """{(module, object): (defined set, undefined set)} from nm -A -P."""
    objs = {}
    for module, path in libs:
        out = subprocess.run(["nm", "-A", "-P", path], check=True, capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            m = re.match(r"^(.*)\[(.*)\]: (\S+) (\S)", line)
            if not m:
                continue
            key = (module, m.group(2))
            defined, undefined = objs.setdefault(key, (set(), set()))
            sym, kind = m.group(3), m.group(4)
            if kind == "U":
                undefined.add(sym)
            elif kind.isupper() and kind not in "UVWN":
                defined.add(sym)
    return objs


def edges_of(objs):
    """{(from object, to object): sorted symbols} for every cross-object reference."""
    owner = {}
    for key, (defined, _) in objs.items():
        for sym in defined:
            owner.setdefault(sym, key)
    edges = collections.defaultdict(set)
    for key, (_, undefined) in objs.items():
        for sym in undefined:
            to = owner.get(sym)
            if to and to != key:
                edges[(key, to)].add(sym)
    return edges


def sccs(nodes, edges):
    """Strongly connected components with more than one node (Tarjan)."""
    succ = collections.defaultdict(list)
    for a, b in edges:
        succ[a].append(b)
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        work = [(v, iter(succ[v]))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
            elif nxt not in index:
                index[nxt] = low[nxt] = counter[0]
                counter[0] += 1
                stack.append(nxt)
                on.add(nxt)
                work.append((nxt, iter(succ[nxt])))
            elif nxt in on:
                low[node] = min(low[node], index[nxt])

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def name(key):
    return "%s/%s" % key


def check(objs):
    """The failures, as lines."""
    problems = []
    edges = edges_of(objs)
    for (a, b), syms in sorted(edges.items()):
        if a[0] != b[0] and b[0] not in ALLOWED[a[0]]:
            problems.append("upward or forbidden: %s -> %s: %s"
                            % (name(a), name(b), ", ".join(sorted(syms))))
    for comp in sccs(objs.keys(), edges):
        modules = {k[0] for k in comp}
        if len(modules) > 1:
            problems.append("cycle across modules: " + " <-> ".join(map(name, comp)))
        elif modules <= SERVER:
            problems.append("file cycle in server/%s: " % next(iter(modules))
                            + " <-> ".join(map(name, comp)))
    for key, (_, undefined) in sorted(objs.items()):
        mhd = sorted(s for s in undefined if s.startswith("MHD_"))
        if mhd and key[0] != "api":
            problems.append("libmicrohttpd outside the api: %s: %s" % (name(key), ", ".join(mhd)))
    return problems


def includes_outside_api(src):
    """Source files that include libmicrohttpd's header outside server/api/ and tests/bench/."""
    out = subprocess.run(["git", "-C", src, "grep", "-l", "-E", r"#\s*include\s*[<\"]microhttpd\.h"],
                         capture_output=True, text=True).stdout.split()
    return [p for p in out if not p.startswith(("server/api/", "tests/bench/"))]


def selftest():
    """The checker must catch what it promises to catch."""
    def objs(spec):
        return {k: (set(d), set(u)) for k, (d, u) in spec.items()}
    ok = objs({("core", "a.o"): (["f"], ["g"]), ("store", "b.o"): (["g"], [])})
    assert check(ok) == [], check(ok)
    up = objs({("core", "a.o"): (["f"], ["h"]), ("api", "h.o"): (["h"], [])})
    assert any("upward" in p and "core/a.o -> api/h.o: h" in p for p in check(up)), check(up)
    side = objs({("store", "a.o"): (["f"], ["k"]), ("crypto", "k.o"): (["k"], [])})
    assert any("forbidden" in p for p in check(side)), check(side)
    loop = objs({("api", "a.o"): (["f"], ["g"]), ("api", "b.o"): (["g"], ["f"])})
    assert any("file cycle in server/api" in p for p in check(loop)), check(loop)
    across = objs({("api", "a.o"): (["f"], ["g"]), ("core", "b.o"): (["g"], ["f"])})
    found = check(across)
    assert any("cycle across modules" in p for p in found) and any("upward" in p for p in found)
    mhd = objs({("core", "a.o"): (["f"], ["MHD_resume_connection"])})
    assert any("libmicrohttpd outside the api" in p for p in check(mhd)), check(mhd)
    inner = objs({("providers", "a.o"): (["f"], ["g"]), ("providers", "b.o"): (["g"], ["f"])})
    assert check(inner) == [], "a cycle inside providers/ is its own business"
    print("layering.py selftest: ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("libs", nargs="*", help="MODULE=path/to/lib.a")
    args = ap.parse_args()
    if args.selftest:
        selftest()
        return 0
    libs = [tuple(x.split("=", 1)) for x in args.libs]
    missing = set(ALLOWED) - {m for m, _ in libs}
    if missing:
        print("layering.py: no library given for " + ", ".join(sorted(missing)))
        return 2
    objs = read_objects(libs)
    problems = check(objs)
    if args.src:
        problems += ["libmicrohttpd's header included outside server/api/: " + p
                     for p in includes_outside_api(args.src)]
    nedges = sum(1 for (a, b) in edges_of(objs) if a[0] != b[0])
    for p in problems:
        print(p)
    print("layering: %d objects, %d cross-module references, %d problems"
          % (len(objs), nedges, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
