"""The web console's files as the daemon serves them (API.md §10), over plain
HTTP: what is compiled in is byte for byte what server/api/ui/ holds, with
the security headers, content types and cache rules; nothing in it names
another origin or runs inline. tests/browser/ drives the same files in a
real browser; tests here also run server/api/embed_ui.cmake on its own."""
import glob
import os
import re
import subprocess
import tempfile

import pytest

from harness import assert_error, finish, start

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UI_DIR = os.path.join(ROOT, "server", "api", "ui")
EMBED = os.path.join(ROOT, "server", "api", "embed_ui.cmake")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}


@pytest.fixture(scope="module")
def d():
    d = start()
    yield d
    finish(d)


def source(name):
    with open(os.path.join(UI_DIR, name), "rb") as f:
        return f.read()


def ui_files():
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(UI_DIR, "*")))


def build_of(d):
    r = d.get("/ui/")
    m = re.search(r'src="assets/([0-9a-f]{16})/app\.js"', r.text)
    assert m, r.text[:500]
    return m.group(1)


def assert_security_headers(r):
    for k, v in SECURITY_HEADERS.items():
        assert r.headers.get(k) == v, (r.url, k, r.headers.get(k))


def test_root_and_ui_redirect_to_ui_slash(d):
    for path in ["/", "/ui"]:
        for method in ["GET", "HEAD"]:
            r = d.request(method, path, allow_redirects=False)
            assert r.status_code == 302, (path, r.status_code, r.text)
            assert r.headers["Location"] == "/ui/"
            assert_security_headers(r)
    r = d.get("/")
    assert r.status_code == 200 and r.url.endswith("/ui/")


def test_index_is_the_source_with_this_builds_asset_urls(d):
    r = d.get("/ui/")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Cache-Control"] == "no-cache"
    assert_security_headers(r)
    build = build_of(d)
    assert r.content == source("index.html").replace(b"@UI_BUILD@", build.encode())
    assert b"@UI_BUILD@" not in r.content
    r = d.request("HEAD", "/ui/")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["Content-Length"] == str(len(source("index.html").replace(b"@UI_BUILD@", build.encode())))


def test_every_asset_is_served_byte_for_byte_with_long_caching(d):
    build = build_of(d)
    names = [n for n in ui_files() if n != "index.html"]
    assert {"app.js", "api.js", "style.css"} <= set(names)
    for n in names:
        r = d.get("/ui/assets/%s/%s" % (build, n))
        assert r.status_code == 200, (n, r.status_code, r.text[:200])
        assert r.content == source(n), n
        assert r.headers["Content-Type"] == TYPES[os.path.splitext(n)[1]], n
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable", n
        assert_security_headers(r)


def test_every_module_import_and_page_reference_resolves(d):
    """index.html's links and each module's imports name files that are served."""
    build = build_of(d)
    refs = re.findall(r'(?:src|href)="assets/%s/([^"]+)"' % build, d.get("/ui/").text)
    assert {"app.js", "style.css"} <= set(refs)
    todo, seen = list(refs), set()
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        r = d.get("/ui/assets/%s/%s" % (build, n))
        assert r.status_code == 200, n
        if n.endswith(".js"):
            for imp in re.findall(r"""^import\s[^'"]*['"]\./([^'"]+)['"]""", r.text, re.M):
                todo.append(imp)
    assert {"app.js", "api.js", "dom.js", "creds.js", "form.js", "admin.js"} <= seen


def test_nothing_inline_and_no_other_origin():
    html = source("index.html").decode()
    # Every script is external and empty; no <style>, no style= or on*= attributes.
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I)
    assert scripts and all('src="assets/' in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"<style\b", html, re.I)
    assert not re.search(r"\sstyle\s*=", html, re.I)
    assert not re.search(r"\son[a-z]+\s*=", html, re.I)
    for n in ui_files():
        text = source(n).decode()
        # No URL with a scheme or a protocol-relative one, except the SVG namespace.
        urls = re.findall(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}[^\s'")]*""", text)
        urls = [u for u in urls if u != "http://www.w3.org/2000/svg"]
        assert not urls, (n, urls)
        assert "@import" not in text and "url(" not in text, n
        if n.endswith(".js"):
            # Text only: nothing parses strings as HTML or evaluates them.
            for bad in [r"\.innerHTML\b", r"\.outerHTML\b", r"insertAdjacentHTML\(", r"document\.write",
                        r"\beval\(", r"new Function\b", r"\blocalStorage\s*[.\[]", r"document\.cookie"]:
                assert not re.search(bad, text), (n, bad)


@pytest.mark.parametrize("path", [
    "/ui/assets/0000000000000000/app.js",       # another build
    "/ui/assets/{build}/nope.js",
    "/ui/assets/{build}/index.html",            # only at /ui/
    "/ui/assets/{build}/APP.JS",
    "/ui/assets/{build}/app.js%00",
    "/ui/assets/{build}/%2e%2e",
])
def test_unknown_console_files_are_404(d, path):
    r = d.get(path.replace("{build}", build_of(d)))
    assert_error(r, 404)
    assert "Cache-Control" not in r.headers


@pytest.mark.parametrize("path", [
    "/ui/index.html", "/ui/app.js", "/ui/assets/{build}", "/ui/assets/{build}/",
    "/ui/assets/{build}/../app.js", "/ui/assets/{build}/..%2Fapp.js", "/ui/assets/{build}/x/app.js",
    "/ui/%2e%2e/api/v1/version", "/ui//"])
def test_other_paths_under_ui_match_no_route(d, path):
    r = d.get(path.replace("{build}", build_of(d)), allow_redirects=False)
    assert_error(r, 404)


def test_only_get_and_head(d):
    for method in ["POST", "PUT", "DELETE"]:
        for path in ["/", "/ui/", "/ui/assets/%s/app.js" % build_of(d)]:
            r = d.request(method, path, data=b"{}", allow_redirects=False)
            assert_error(r, 405, "method_not_allowed")
            assert r.headers["Allow"] == "GET"


def run_embed(ui_dir, out):
    r = subprocess.run(["cmake", "-DUI_DIR=" + ui_dir, "-DOUT=" + out, "-P", EMBED],
                       capture_output=True, text=True, timeout=60)
    return r, (open(out).read() if r.returncode == 0 else "")


def test_embed_step_bytes_table_and_build_hash():
    """The generator on its own: bytes as given, index.html's placeholder
    filled, and a build id that changes with any file's content."""
    with tempfile.TemporaryDirectory() as tmp:
        ui, out = os.path.join(tmp, "ui"), os.path.join(tmp, "ui_files.c")
        os.mkdir(ui)
        with open(os.path.join(ui, "index.html"), "w") as f:
            f.write('<script src="assets/@UI_BUILD@/a.js"></script>')
        with open(os.path.join(ui, "a.js"), "wb") as f:
            f.write(b"\x00\xff'\"\\\n")
        r, c1 = run_embed(ui, out)
        assert r.returncode == 0, r.stderr
        build = re.search(r'cs_ui_build\[\] = "([0-9a-f]{16})"', c1).group(1)
        assert "{0x00,0xff,0x27,0x22,0x5c,0x0a,}" in c1
        assert '{"a.js", file0, 6}' in c1 and "cs_ui_files_count = 2" in c1
        html = '<script src="assets/%s/a.js"></script>' % build
        hexed = "".join("0x%02x," % b for b in html.encode())
        assert "{%s}" % hexed in c1 and ('{"index.html", file1, %d}' % len(html)) in c1
        with open(os.path.join(ui, "a.js"), "ab") as f:
            f.write(b"x")
        r, c2 = run_embed(ui, out)
        assert r.returncode == 0
        assert re.search(r'cs_ui_build\[\] = "([0-9a-f]{16})"', c2).group(1) != build
        # Names that could not be served as one path segment, and empty files, are refused.
        for bad, content in [("a b.js", "x"), ("empty.js", "")]:
            with open(os.path.join(ui, bad), "w") as f:
                f.write(content)
            r, _ = run_embed(ui, out)
            assert r.returncode != 0 and "embed_ui" in r.stderr, (bad, r.stderr)
            os.remove(os.path.join(ui, bad))
