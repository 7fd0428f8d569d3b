"""Hostile HTTP over raw sockets: truncated and oversized requests, bogus
framing, NUL bytes, bad encodings, slow and idle clients, pipelining. After
each case the server still answers and the stored data is exactly what the
test stored before. Loopback only; every test is bounded in time."""
import json
import re
import resource
import socket
import threading
import time

import pytest
import requests

from harness import SLOW, Raw, finish, req, sanitizer_lines, start

GUID = "0123456789abcdef0123456789abcdef"
CONN_TIMEOUT = 2  # --conn-timeout of the shared daemon


def api(d, method, path, **kw):
    """One request on its own connection: the daemon's short --conn-timeout
    would otherwise race with pooled keep-alive connections."""
    kw.setdefault("timeout", 15 * SLOW)
    headers = dict(d.auth)
    headers.update(kw.pop("headers", {}) or {})
    headers["Connection"] = "close"
    return requests.request(method, d.url + path, headers=headers, **kw)


def healthz_ok(d, budget=1.0):
    t0 = time.monotonic()
    r = requests.get(d.url + "/healthz", headers={"Connection": "close"}, timeout=5 * SLOW)
    took = time.monotonic() - t0
    assert r.status_code == 200 and r.json() == {"status": "ok"}, r.text
    assert took < budget * SLOW, "healthz took %.2fs" % took
    return took


def snapshot(d):
    """Everything the tests compare: the full credential list and usages."""
    r = api(d, "GET", "/api/v1/credentials?limit=500")
    assert r.status_code == 200, r.text
    creds = json.loads(r.content.decode("utf-8"))  # strict UTF-8
    usages = {}
    for c in creds:
        u = api(d, "GET", "/api/v1/credentials/%s/usages" % c["_id"])
        assert u.status_code == 200, u.text
        usages[c["_id"]] = sorted(u.json(), key=lambda x: x["id"])
    return {"total": r.headers.get("Total-Count"), "creds": creds, "usages": usages}


def credential(cid, **extra):
    body = {"_id": cid, "type": "ibmCloud", "accountGUID": GUID,
            "secret": {"plain": "ibm-key-" + cid}, "description": "seed " + cid}
    body.update(extra)
    return body


# ------------------------------------------------------------------ fixtures

SEED = ["seed-ibm", "seed-aws", "seed-in-use"]


@pytest.fixture(scope="module")
def d():
    dd = start("--conn-timeout", str(CONN_TIMEOUT))
    for cid in SEED:
        assert api(dd, "POST", "/api/v1/credentials", json=credential(cid)).status_code == 201
    r = api(dd, "POST", "/api/v1/credentials/seed-in-use/usages", json={"type": "Registry Scan"})
    assert r.status_code == 201, r.text
    dd.baseline = snapshot(dd)
    yield dd
    finish(dd)


@pytest.fixture
def h(d):
    """Per test: the server answers and the stored data is unchanged."""
    yield d
    healthz_ok(d)
    assert snapshot(d) == d.baseline
    assert not sanitizer_lines(d), sanitizer_lines(d)[:10]


def auth_of(d):
    return d.auth["Authorization"]


def create_req(d, cid, extra_headers=(), body=None):
    """A complete, valid create request for @cid (would store it)."""
    b = json.dumps(credential(cid)).encode() if body is None else body
    return req("POST", "/api/v1/credentials", auth=auth_of(d),
               headers=["Content-Type: application/json",
                        "Content-Length: %d" % len(b)] + list(extra_headers), body=b)


def assert_absent(d, *cids):
    for cid in cids:
        r = api(d, "GET", "/api/v1/credentials/" + cid)
        assert r.status_code == 404, (cid, r.status_code, r.text)


# --------------------------------------------------------- truncated input

def partial_payloads(d):
    body = json.dumps(credential("trunc-1")).encode()
    cut = body[:len(body) // 2]
    return {
        "request line": b"POST /api/v1/cred",
        "headers": req("POST", "/api/v1/credentials", auth=auth_of(d))[:-2] + b"X-Partial: a",
        "body shorter than Content-Length":
            req("POST", "/api/v1/credentials", auth=auth_of(d),
                headers=["Content-Length: %d" % len(body)]) + cut,
        "chunked body without its last chunk":
            req("POST", "/api/v1/credentials", auth=auth_of(d),
                headers=["Transfer-Encoding: chunked"]) + b"%x\r\n%s\r\n" % (len(body), body),
        "TLS hello on plain HTTP": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64,
    }


def test_truncated_requests_then_client_closes(h):
    for name, data in partial_payloads(h).items():
        c = Raw(h)
        c.send(data)
        c.close()
    healthz_ok(h)
    assert_absent(h, "trunc-1")


def test_stalled_partial_requests_are_closed_by_conn_timeout(h):
    conns = {}
    for name, data in partial_payloads(h).items():
        conns[name] = Raw(h)
        conns[name].send(data)
    t0 = time.monotonic()
    healthz_ok(h)  # others are answered while these stall
    try:
        for name, c in conns.items():
            left = CONN_TIMEOUT + 2.5 - (time.monotonic() - t0)
            assert c.closed_within(max(left, 0.1) * SLOW) is not None, \
                "stalled %s not closed ~%ds after --conn-timeout %d" % (
                    name, CONN_TIMEOUT + 2, CONN_TIMEOUT)
    finally:
        for c in conns.values():
            c.close()
    assert_absent(h, "trunc-1")


def test_body_cut_mid_json_stores_nothing(h):
    body = json.dumps(credential("cut-1")).encode()
    for n in (1, 10, len(body) // 2, len(body) - 1):
        c = Raw(h)
        c.send(create_req(h, "cut-1", body=body[:n]))  # framing complete, JSON cut
        resp = c.response()
        c.close()
        assert resp is not None and resp[0] == 400, (n, resp)
        assert json.loads(resp[2])["code"] == "malformed_json", resp
    assert_absent(h, "cut-1")


# ------------------------------------------------------- oversized headers

def refused_and_closed(resp, conn, allowed=(400, 413, 414, 431)):
    """The server refused (an allowed status, or just a close) and the
    connection ends; nothing after the refusal is processed."""
    if resp is not None:
        assert resp[0] in allowed, resp[:2]
    assert conn.closed_within(3 * SLOW) is not None, "connection kept open after refusal"


def test_oversized_header_line_and_many_headers(h):
    cases = {
        "100 KiB header line": ["X-Big: " + "a" * (100 * 1024)],
        "1000 headers": ["X-H%d: v" % i for i in range(1000)],
        "100 KiB cookie": ["Cookie: " + "c=" * (50 * 1024)],
    }
    for name, extra in cases.items():
        for target in ("healthz", "create"):
            c = Raw(h)
            if target == "healthz":
                data = req("GET", "/healthz", headers=extra)
            else:
                data = create_req(h, "big-hdr-1", extra_headers=extra)
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed while we were still sending: acceptable
            resp = c.response()
            refused_and_closed(resp, c)
            c.close()
        healthz_ok(h)
    # A 100 KiB request target.
    c = Raw(h)
    c.send(req("GET", "/api/v1/credentials/" + "a" * (100 * 1024), auth=auth_of(h)))
    refused_and_closed(c.response(), c)
    c.close()
    assert_absent(h, "big-hdr-1")


# ------------------------------------------------------ bogus framing

def test_bogus_content_length(h):
    body = json.dumps(credential("bogus-cl")).encode()
    for value in ["-1", "-%d" % len(body), "abc", "99999999999999999999",
                  "18446744073709551616", "+%d" % len(body), "0x%x" % len(body),
                  "%d.0" % len(body), ""]:
        c = Raw(h)
        c.send(req("POST", "/api/v1/credentials", auth=auth_of(h),
                   headers=["Content-Type: application/json", "Content-Length: " + value],
                   body=body))
        resp = c.response()
        refused_and_closed(resp, c)
        c.close()
    healthz_ok(h)
    assert_absent(h, "bogus-cl")


def test_conflicting_content_length_is_refused(h):
    """Two different Content-Length values make the framing ambiguous (RFC
    9112 §6.3: respond 400 and close). Here the first length covers a valid
    create of smuggle-1 and the second also covers a smuggled create of
    smuggle-2: a proxy trusting the second value would forward one request,
    the server must not execute either."""
    smuggled = create_req(h, "smuggle-2")
    body = json.dumps(credential("smuggle-1")).encode()
    for order in ("short-first", "long-first"):
        lens = [len(body), len(body) + len(smuggled)]
        if order == "long-first":
            lens.reverse()
        c = Raw(h)
        c.send(req("POST", "/api/v1/credentials", auth=auth_of(h),
                   headers=["Content-Type: application/json"] +
                   ["Content-Length: %d" % n for n in lens], body=body + smuggled))
        first = c.response()
        second = c.response(timeout=1) if first is not None else None
        c.close()
        stored = [cid for cid in ("smuggle-1", "smuggle-2")
                  if api(h, "GET", "/api/v1/credentials/" + cid).status_code == 200]
        for cid in stored:  # keep the shared store clean for later tests
            api(h, "DELETE", "/api/v1/credentials/" + cid)
        assert first is not None and first[0] == 400 and second is None and not stored, \
            "%s: responses %r / %r, stored %r" % (
                order, first and first[:2], second and second[:2], stored)


def test_transfer_encoding_with_content_length_closes(h):
    """Transfer-Encoding and Content-Length together (CL.TE smuggling): the
    Content-Length covers a chunked create of te-cl-1 *and* a create of
    te-cl-2, so a front end trusting Content-Length forwards one request.
    The server may refuse, or use the chunked framing alone, but must then
    close the connection (RFC 9112 §6.1): te-cl-2 is never executed."""
    body = json.dumps(credential("te-cl-1")).encode()
    smuggled = create_req(h, "te-cl-2")
    payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) + smuggled
    c = Raw(h)
    c.send(req("POST", "/api/v1/credentials", auth=auth_of(h),
               headers=["Content-Type: application/json", "Content-Length: %d" % len(payload),
                        "Transfer-Encoding: chunked"], body=payload))
    first = c.response()
    second = c.response(timeout=1) if first is not None else None
    c.close()
    stored = {cid: api(h, "GET", "/api/v1/credentials/" + cid).status_code == 200
              for cid in ("te-cl-1", "te-cl-2")}
    for cid, there in stored.items():
        if there:
            api(h, "DELETE", "/api/v1/credentials/" + cid)
    assert first is None or first[0] in (201, 400), first[:2]
    assert second is None and not stored["te-cl-2"], \
        "the smuggled request after a TE+CL request was executed: %r, stored %r" % (
            second and second[:2], stored)


def test_malformed_field_names_and_encodings_are_refused_and_close(h):
    """RFC 9112 §5.1: no blank between a field name and its colon, and a
    name is a token. libmicrohttpd 0.9.75 keeps "Transfer-Encoding " as a
    name, glues folded lines onto the name, and frames the body as if there
    were no such header, where a proxy may honour it: each request here
    carries a smuggled create behind it. The answer is 400 with Connection: close, nothing is stored, and the
    bytes after it are never read as a request."""
    body = json.dumps(credential("fn-1")).encode()
    smuggled = create_req(h, "fn-2")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    cl = "Content-Length: %d" % len(body)
    cases = {
        "space before colon, TE": (["Transfer-Encoding : chunked"], chunked),
        "tab before colon, TE": (["Transfer-Encoding\t: chunked"], chunked),
        "two spaces before colon, TE": (["Transfer-Encoding  : chunked"], chunked),
        "space before colon, CL": (["Content-Length : %d" % len(body)], body),
        "tab before colon, CL": (["Content-Length\t: %d" % len(body)], body),
        "CL, and TE with a blank": ([cl, "Transfer-Encoding : chunked"], body),
        "TE, and CL with a blank": (["Transfer-Encoding: chunked",
                                     "Content-Length : %d" % len(body)], chunked),
        "space inside a name": ([cl, "X Forwarded: a"], body),
        "separator in a name": ([cl, "X(a): b"], body),
        "slash in a name": ([cl, "X/Y: b"], body),
        "control byte in a name": ([cl, "X-\x01A: b"], body),
        "non-ASCII name": ([cl, "X-\xe9: b"], body),
        "folded CL": (["Content-Length:", " %d" % len(body)], body),
        "folded TE": (["Transfer-Encoding:", "\tchunked"], chunked),
        "CL name with a suffix": (["Content-Lengthx: %d" % len(body)], body),
        "leading blank on the first field": ([" Content-Length: %d" % len(body)], body),
        "TE gzip": (["Transfer-Encoding: gzip"], chunked),
        "TE gzip, chunked": (["Transfer-Encoding: gzip, chunked"], chunked),
        "TE chunked, identity": (["Transfer-Encoding: chunked, identity"], chunked),
        "TE identity": (["Transfer-Encoding: identity"], body),
        "TE twice": (["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], chunked),
    }
    problems = []
    for name, (hdrs, payload) in cases.items():
        c = Raw(h)
        c.send(req("POST", "/api/v1/credentials", auth=auth_of(h),
                   headers=["Content-Type: application/json"] + hdrs, body=payload + smuggled))
        first = c.response()
        second = c.response(timeout=1) if first is not None else None
        closed = c.closed_within(2 * SLOW) if second is None else None
        c.close()
        if first is None or first[0] != 400 or second is not None or closed is None:
            problems.append("%s: %r then %r, closed %r" % (
                name, first and first[:2], second and second[:2], closed))
        elif first[1].get("connection", "").lower() != "close":
            problems.append("%s: 400 without Connection: close" % name)
        elif json.loads(first[2])["code"] != "invalid_field":
            problems.append("%s: %r" % (name, first[2][:100]))
    assert_absent(h, "fn-1", "fn-2")
    assert not problems, "\n".join(problems)


def test_bad_chunked_bodies(h):
    body = json.dumps(credential("chunky")).encode()
    n = len(body)
    cases = {
        "non-hex size": b"zz\r\n" + body + b"\r\n0\r\n\r\n",
        "negative size": b"-1\r\n" + body + b"\r\n0\r\n\r\n",
        "huge size": b"FFFFFFFFFFFFFFFFFF\r\n" + body + b"\r\n0\r\n\r\n",
        "size 2^64": b"10000000000000000\r\n" + body + b"\r\n0\r\n\r\n",
        "data longer than size": b"%x\r\n%sEXTRA\r\n0\r\n\r\n" % (n, body),
        "missing CRLF after data": b"%x\r\n%s0\r\n\r\n" % (n, body),
        "size with junk": b"%x;\x00\xff\r\n%s\r\n0\r\n\r\n" % (n, body),
    }
    for name, chunks in cases.items():
        c = Raw(h)
        c.send(req("POST", "/api/v1/credentials", auth=auth_of(h),
                   headers=["Content-Type: application/json", "Transfer-Encoding: chunked",
                            "Connection: close"], body=chunks))
        resp = c.response()
        c.close()
        st = resp[0] if resp else None
        if st in (200, 201):  # only a lenient but exact parse may store it
            got = api(h, "GET", "/api/v1/credentials/chunky").json()
            api(h, "DELETE", "/api/v1/credentials/chunky")
            assert got["description"] == "seed chunky", (name, got)
            assert name == "size with junk", (name, resp[:2])  # chunk extensions are legal
        else:
            assert st in (None, 400, 413), (name, resp and resp[:2])
            assert_absent(h, "chunky")
    healthz_ok(h)


# ------------------------------------------------------------- NUL bytes

def test_nul_bytes_in_url_and_headers(h):
    for data in [b"GET /healthz\x00junk HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 b"GET /\x00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nConnection: close\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-\x00A: b\r\nConnection: close\r\n\r\n",
                 b"\x00\x00\x00\x00\r\n\r\n"]:
        c = Raw(h)
        c.send(data)
        resp = c.response()
        c.close()
        assert resp is None or 200 <= resp[0] < 600
    # An Authorization value cut by a NUL authenticates nobody it shouldn't.
    c = Raw(h)
    c.send(req("GET", "/api/v1/credentials/seed-ibm",
               auth="Basic\x00" + auth_of(h).split(" ", 1)[1], headers=["Connection: close"]))
    resp = c.response()
    c.close()
    assert resp is None or resp[0] in (400, 401), resp and resp[:2]
    healthz_ok(h)


def test_nul_in_path_id_does_not_act_on_the_prefix(h):
    """/api/v1/credentials/victim%00junk names no valid credential (ids are
    [A-Za-z0-9._-]); it must not read, update or delete "victim"."""
    problems = []
    try:
        for path in ["/api/v1/credentials/victim%00junk", "/api/v1/credentials/victim%00",
                     "/api/v1/credentials/victim%00/usages"]:
            assert api(h, "POST", "/api/v1/credentials",
                       json=credential("victim")).status_code in (200, 201)
            for method, kw in [("GET", {}), ("PUT", {"json": credential("victim",
                                                                          description="hijacked")}),
                               ("POST", {"json": {"type": "hijack"}}), ("DELETE", {})]:
                r = api(h, method, path, **kw)
                if r.status_code not in (400, 404, 405):
                    problems.append("%s %s -> %d %s" % (method, path, r.status_code, r.text[:80]))
            api(h, "DELETE", "/api/v1/credentials/victim")
        # The same with a raw NUL byte in the request line.
        assert api(h, "POST", "/api/v1/credentials", json=credential("victim")).status_code == 201
        c = Raw(h)
        c.send(b"DELETE /api/v1/credentials/victim\x00junk HTTP/1.1\r\nHost: x\r\n"
               b"Authorization: " + auth_of(h).encode() + b"\r\nConnection: close\r\n\r\n")
        resp = c.response()
        c.close()
        if resp is not None and resp[0] not in (400, 404):
            problems.append("DELETE victim<NUL>junk (raw) -> %d" % resp[0])
        got = api(h, "GET", "/api/v1/credentials/victim")
        if got.status_code != 200:
            problems.append("victim is gone after the raw-NUL DELETE")
    finally:
        for u in (api(h, "GET", "/api/v1/credentials/victim/usages").json()
                  if api(h, "GET", "/api/v1/credentials/victim").status_code == 200 else []):
            api(h, "DELETE", "/api/v1/credentials/victim/usages/" + u["id"])
        api(h, "DELETE", "/api/v1/credentials/victim")
    assert not problems, "\n".join(problems)


# ------------------------------------------------ encodings in JSON fields

BAD_TEXT = {
    "invalid byte": b"\xff\xfe",
    "overlong slash": b"\xc0\xaf",
    "CESU surrogate": b"\xed\xa0\x80",
    "truncated sequence": b"\xe2\x82",
    "lone high escape": b"\\ud800",
    "lone low escape": b"\\udc00",
    "two high escapes": b"\\ud800\\ud800",
    "reversed pair": b"\\ude00\\ud83d",
}


def json_field(cid, field, raw):
    """A create body for @cid whose @field string holds the raw bytes @raw."""
    base = credential(cid)
    if field == "secret":
        base["secret"] = {"plain": "@@RAW@@"}
    else:
        base[field] = "@@RAW@@"
    return json.dumps(base).encode().replace(b"@@RAW@@", b"pre-" + raw + b"-post")


def strict_json(resp):
    return json.loads(resp.content.decode("utf-8"))  # raises on invalid UTF-8


def test_invalid_utf8_and_lone_surrogates_are_refused_or_round_trip():
    """Each bad string gets 400, or is stored such that every response that
    carries it (get, list, resolve) is still valid UTF-8 JSON."""
    dd = start()
    problems = []
    try:
        for field in ("description", "_id", "secret", "accountGUID"):
            for name, raw in BAD_TEXT.items():
                cid = "enc-x"
                r = api(dd, "POST", "/api/v1/credentials", data=json_field(cid, field, raw))
                if r.status_code == 400:
                    assert strict_json(r)["code"], r.content
                    continue
                uid = None
                try:
                    created = strict_json(r)
                    assert created["_id"] == cid, created
                    got = strict_json(api(dd, "GET", "/api/v1/credentials/" + cid))
                    assert got == created
                    strict_json(api(dd, "GET", "/api/v1/credentials"))
                    uid = api(dd, "POST", "/api/v1/credentials/%s/usages" % cid,
                              json={"type": "x"}).json()["id"]
                    strict_json(api(dd, "POST", "/api/v1/credentials/%s/resolve" % cid,
                                    json={"usageId": uid}))
                except (ValueError, AssertionError, KeyError) as e:
                    problems.append("%s/%s: %d, a response is not valid UTF-8 JSON (%s): %r" % (
                        field, name, r.status_code, type(e).__name__, r.content[:100]))
                finally:  # the next case starts from an empty store
                    if uid:
                        api(dd, "DELETE", "/api/v1/credentials/%s/usages/%s" % (cid, uid))
                    api(dd, "DELETE", "/api/v1/credentials/" + cid)
        # Free-text usage fields.
        assert api(dd, "POST", "/api/v1/credentials",
                   json=credential("enc-u")).status_code == 201
        for field in ("type", "description"):
            for name, raw in BAD_TEXT.items():
                body = json.dumps({"type": "Cloud Scan", field: "@@RAW@@"}).encode().replace(
                    b"@@RAW@@", b"pre-" + raw + b"-post")
                r = api(dd, "POST", "/api/v1/credentials/enc-u/usages", data=body)
                if r.status_code == 400:
                    continue
                try:
                    uid = strict_json(r)["id"]
                    strict_json(api(dd, "GET", "/api/v1/credentials/enc-u/usages"))
                    api(dd, "DELETE", "/api/v1/credentials/enc-u/usages/" + uid)
                except (ValueError, KeyError) as e:
                    problems.append("usage %s/%s: %d, a response is not valid UTF-8 JSON (%s)"
                                    % (field, name, r.status_code, type(e).__name__))
                    for u in re.findall(rb'"id":"(u-[0-9a-f]+)"', api(
                            dd, "GET", "/api/v1/credentials/enc-u/usages").content):
                        api(dd, "DELETE", "/api/v1/credentials/enc-u/usages/" + u.decode())
        # Valid escapes, non-BMP characters included, round-trip exactly.
        body = credential("enc-ok", description="\U0001F600 caf\u00e9 \u2028 end")
        r = api(dd, "POST", "/api/v1/credentials",
                data=json.dumps(body, ensure_ascii=True).encode())
        assert r.status_code == 201, r.text
        assert strict_json(api(dd, "GET", "/api/v1/credentials/enc-ok"))["description"] == \
            body["description"]
        assert dd.get("/healthz").status_code == 200
    finally:
        finish(dd)
    assert not problems, "\n".join(problems)


def test_nul_escape_in_json_strings_is_refused_or_kept_whole():
    """"\\u0000" inside a string must not silently cut the value: the id
    "nul\\u0000evil" must not write credential "nul", and a secret
    "abc\\u0000def" must not be stored as "abc"."""
    dd = start()
    try:
        problems = []
        r = api(dd, "POST", "/api/v1/credentials",
                data=json.dumps(credential("nul\u0000evil")).encode())
        if r.status_code != 400:
            problems.append("_id with \\u0000: %d %s" % (r.status_code, r.text[:150]))
        r = api(dd, "POST", "/api/v1/credentials",
                data=json.dumps(credential("nul-desc", description="a\u0000b")).encode())
        if r.status_code != 400:
            got = api(dd, "GET", "/api/v1/credentials/nul-desc").json()
            if got.get("description") != "a\u0000b":
                problems.append("description a\\u0000b stored as %r" % got.get("description"))
        r = api(dd, "POST", "/api/v1/credentials",
                data=json.dumps(credential("nul-secret",
                                           secret={"plain": "abc\u0000def"})).encode())
        if r.status_code != 400:
            u = api(dd, "POST", "/api/v1/credentials/nul-secret/usages", json={"type": "x"})
            m = api(dd, "POST", "/api/v1/credentials/nul-secret/resolve",
                    json={"usageId": u.json()["id"]}).json()
            if m.get("apiKey") != "abc\u0000def":
                problems.append("secret abc\\u0000def stored and resolved as %r" % m.get("apiKey"))
        assert dd.get("/healthz").status_code == 200
    finally:
        finish(dd)
    assert not problems, "\n".join(problems)


# ------------------------------------------------------ slow and idle clients

class Prober(threading.Thread):
    """GET /healthz every 0.1 s until stopped; records each latency."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d, self.stop, self.lat, self.errors = d, threading.Event(), [], []

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                r = requests.get(self.d.url + "/healthz", headers={"Connection": "close"},
                                 timeout=5 * SLOW)
                if r.status_code != 200:
                    self.errors.append(r.status_code)
            except requests.RequestException as e:
                self.errors.append(repr(e))
            self.lat.append(time.monotonic() - t0)
            self.stop.wait(0.1)

    def finish(self):
        self.stop.set()
        self.join(10)
        assert not self.errors, self.errors[:5]
        assert self.lat and max(self.lat) < 1.0 * SLOW, "slowest healthz %.2fs" % max(self.lat)


def test_slowloris_is_cut_off_and_others_are_served(h):
    """One header byte every 0.5 s: each byte is activity, but a request
    whose headers never finish must still be closed after about
    --conn-timeout (+2 s slack), while other clients are answered quickly."""
    probe = Prober(h)
    probe.start()
    c = Raw(h)
    msg = req("GET", "/healthz", headers=["X-Slow: " + "a" * 200])
    t0 = time.monotonic()
    closed_at = None
    try:
        for i in range(len(msg)):
            if time.monotonic() - t0 > CONN_TIMEOUT + 3.5:
                break
            try:
                c.send(msg[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic() - t0
                break
            if c.closed_within(0.5) is not None:
                closed_at = time.monotonic() - t0
                break
    finally:
        c.close()
        probe.finish()
    assert closed_at is not None and closed_at <= (CONN_TIMEOUT + 2) * SLOW, \
        "a client sending one header byte per 0.5 s was still connected after %.1fs " \
        "(--conn-timeout %d)" % (time.monotonic() - t0, CONN_TIMEOUT)


def test_many_idle_connections(h):
    """300 idle connections, from three addresses (each below the default
    per-address limit of 128), while the prober on 127.0.0.1 is served."""
    n = 300
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 512), hard))
    socks = []
    try:
        t0 = time.monotonic()
        for i in range(n):
            socks.append(socket.create_connection(("127.0.0.1", h.port), timeout=3 * SLOW,
                                                  source_address=("127.0.0.%d" % (2 + i % 3), 0)))
        probe = Prober(h)
        probe.start()
        time.sleep(1.2)
        probe.finish()
        # The server reclaims them after --conn-timeout.
        deadline = t0 + (CONN_TIMEOUT + 3) * SLOW
        still_open = 0
        for s in socks:
            s.settimeout(max(deadline - time.monotonic(), 0.05))
            try:
                if s.recv(1) != b"":
                    still_open += 1
            except socket.timeout:
                still_open += 1
            except (ConnectionResetError, BrokenPipeError):
                pass
        assert still_open == 0, "%d of %d idle connections still open" % (still_open, n)
    finally:
        for s in socks:
            s.close()


def test_pipelined_requests_on_one_connection(h):
    bad = json.dumps({"_id": "pipe-x", "type": "vault"}).encode()
    data = (req("GET", "/healthz") +
            req("GET", "/api/v1/credentials/seed-ibm", auth=auth_of(h)) +
            req("POST", "/api/v1/credentials", auth=auth_of(h),
                headers=["Content-Length: %d" % len(bad)], body=bad) +
            req("GET", "/api/v1/credentials/nope", auth=auth_of(h)) +
            req("GET", "/readyz", headers=["Connection: close"]))
    c = Raw(h)
    c.send(data)
    got = [c.response() for _ in range(5)]
    closed = c.closed_within(2 * SLOW)
    c.close()
    assert [g and g[0] for g in got] == [200, 200, 400, 404, 200], [g and g[:2] for g in got]
    assert json.loads(got[0][2]) == {"status": "ok"}
    assert json.loads(got[1][2])["_id"] == "seed-ibm"
    assert json.loads(got[2][2])["field"] == "type"
    assert closed is not None, "Connection: close on the last request was not honoured"
    # Pipelining across many requests and a keep-alive reuse of the socket.
    c = Raw(h)
    c.send(req("GET", "/healthz") * 50)
    statuses = [(c.response() or (None,))[0] for _ in range(50)]
    c.close()
    assert statuses == [200] * 50
    assert_absent(h, "pipe-x")
