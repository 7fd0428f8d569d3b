"""Per-thread CPU and context switches of a process, for run.sh --profile.

  taskstat.py snap PID > FILE           one line per thread
  taskstat.py diff BEFORE AFTER N       per request (N requests in between),
                                        MHD workers summed, other threads apiece

CPU from /proc/PID/task/TID/stat (utime, stime), switches from .../status
(voluntary: the thread blocked, e.g. in a futex or epoll wait; involuntary:
preempted). A voluntary switch is one sleep, so one wake-up later.
"""
import os
import sys


def snap(pid):
    tck = os.sysconf("SC_CLK_TCK")
    for tid in sorted(os.listdir("/proc/%s/task" % pid), key=int):
        base = "/proc/%s/task/%s/" % (pid, tid)
        try:
            with open(base + "stat") as f:
                st = f.read()
            with open(base + "status") as f:
                status = dict(ln.split(":", 1) for ln in f if ":" in ln)
        except OSError:
            continue  # the thread ended meanwhile
        comm = st[st.index("(") + 1:st.rindex(")")].replace(" ", "_")
        fields = st[st.rindex(")") + 2:].split()
        print("%s %s %.6f %.6f %s %s" % (
            tid, comm, int(fields[11]) / tck, int(fields[12]) / tck,
            status["voluntary_ctxt_switches"].strip(),
            status["nonvoluntary_ctxt_switches"].strip()))


def load(path):
    out = {}
    with open(path) as f:
        for ln in f:
            tid, comm, ut, st, vol, invol = ln.split()
            out[tid] = (comm, float(ut), float(st), int(vol), int(invol))
    return out


def diff(before, after, n):
    a, b = load(before), load(after)
    rows = {}
    for tid, (comm, ut, st, vol, invol) in b.items():
        c0 = a.get(tid, (comm, 0.0, 0.0, 0, 0))
        d = (ut - c0[1], st - c0[2], vol - c0[3], invol - c0[4])
        key = comm if comm.startswith("MHD") else "%s (tid %s)" % (comm, tid)
        r = rows.setdefault(key, [0, 0.0, 0.0, 0, 0])
        r[0] += 1
        for i in range(4):
            r[i + 1] += d[i]
    tot = [sum(r[i] for r in rows.values()) for i in range(5)]
    print("  %-26s %7s %10s %10s %12s %12s" % ("threads", "count", "user µs", "sys µs",
                                                 "voluntary", "involuntary"))
    for key, r in sorted(rows.items(), key=lambda kv: -(kv[1][1] + kv[1][2])):
        if r[1] + r[2] + r[3] + r[4] == 0:
            continue
        print("  %-26s %7d %10.1f %10.1f %12.3f %12.3f" % (
            key, r[0], r[1] * 1e6 / n, r[2] * 1e6 / n, r[3] / n, r[4] / n))
    print("  %-26s %7d %10.1f %10.1f %12.3f %12.3f   (per request, %d requests)" % (
        "all", tot[0], tot[1] * 1e6 / n, tot[2] * 1e6 / n, tot[3] / n, tot[4] / n, n))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "snap":
        snap(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "diff":
        diff(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
