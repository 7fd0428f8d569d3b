"""Check real HTTP responses against the contract, api-spec/openapi.yaml.

Usage from any integration test:

    from openapi_check import check
    r = d.get("/api/v1/credentials/aws-prod", headers=auth)
    body = check(r, "GET", "/api/v1/credentials/{id}")   # or check(r)

check() finds the operation, asserts that the response's status code is
documented for it, that every required response header is present and valid,
that the Content-Type is a documented one, and validates the body against the
documented schema (JSON Schema 2020-12, as OpenAPI 3.1 schemas are, with every
$ref resolved inside the spec). It returns the parsed body (None when there is
none) and raises SpecViolation (an AssertionError) naming the problem.

Paths no route matches and methods a path does not support are checked
against the spec's root extension x-credstore-unmatched-responses (404
no_route; 405 with an Allow header that must list exactly the methods the
spec documents for the path).
"""
import functools
import json
import os
import re
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator, RefResolver
from jsonschema.exceptions import best_match

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC_PATH = os.path.join(ROOT, "api-spec", "openapi.yaml")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class SpecViolation(AssertionError):
    """A response (or value) that the OpenAPI document does not allow."""


@functools.lru_cache(maxsize=None)
def load_spec(path=SPEC_PATH):
    """The spec as a dict (parsed once per path)."""
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def spec():
    return load_spec(SPEC_PATH)


# ------------------------------------------------------------------ $refs

def pointer(doc, ref):
    """Follow a local JSON pointer ("#/components/schemas/X")."""
    if not ref.startswith("#/"):
        raise SpecViolation("only local $refs are supported, got %r" % ref)
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise SpecViolation("unresolvable $ref %r" % ref)
    return node


def deref(node, doc=None):
    """Resolve an OpenAPI object that may be a {"$ref": ...} (chains too)."""
    doc = doc or spec()
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            raise SpecViolation("$ref cycle at %r" % ref)
        seen.add(ref)
        node = pointer(doc, ref)
    return node


@functools.lru_cache(maxsize=None)
def _resolver(path):
    return RefResolver(base_uri="", referrer=load_spec(path))


def validator(schema):
    """A Draft 2020-12 validator for @p schema whose $refs resolve in the spec."""
    return Draft202012Validator(schema, resolver=_resolver(SPEC_PATH))


def validate(instance, schema, what="value"):
    """Raise SpecViolation unless @p instance is valid under @p schema."""
    errors = list(validator(schema).iter_errors(instance))
    if errors:
        best = best_match(errors)
        where = "/".join(str(p) for p in best.absolute_path) or "(root)"
        raise SpecViolation("%s does not match the spec at %s: %s\n  all errors: %s\n  value: %s"
                            % (what, where, best.message,
                               "; ".join(e.message[:200] for e in errors),
                               json.dumps(instance)[:2000]))


def validate_schema(instance, name):
    """Validate @p instance against components/schemas/@p name."""
    if name not in spec().get("components", {}).get("schemas", {}):
        raise SpecViolation("no schema %r in the spec" % name)
    validate(instance, {"$ref": "#/components/schemas/" + name}, "value for schema " + name)


# ------------------------------------------------------------------ paths

def _template_regex(template):
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def find_path(path):
    """The spec's path template for @p path (a template or a concrete path,
    query string ignored), or None when no template matches. A template with
    more literal segments wins over one with more parameters."""
    paths = spec()["paths"]
    path = urlsplit(path).path
    if path in paths:
        return path
    hits = [t for t in paths if _template_regex(t).fullmatch(path)]
    if not hits:
        return None
    return min(hits, key=lambda t: t.count("{"))


def documented_methods(template):
    """Upper-case methods the spec documents for @p template."""
    item = spec()["paths"][template]
    return {m.upper() for m in item if m in HTTP_METHODS}


def operation(method, template):
    """The operation object for @p method on @p template, or None."""
    item = spec()["paths"].get(template) or {}
    return item.get(method.lower())


# -------------------------------------------------------------- responses

def _header_value(name, value, schema):
    schema = deref(schema)
    t = schema.get("type")
    if t == "integer":
        if not re.fullmatch(r"-?[0-9]+", value.strip()):
            raise SpecViolation("header %s: %r is not an integer" % (name, value))
        return int(value)
    if t == "boolean":
        if value not in ("true", "false"):
            raise SpecViolation("header %s: %r is not a boolean" % (name, value))
        return value == "true"
    return value


def _media_match(ctype, content):
    if ctype in content:
        return ctype
    major = ctype.split("/")[0] + "/*"
    if major in content:
        return major
    if "*/*" in content:
        return "*/*"
    return None


def check(response, method=None, path_pattern=None):
    """Check a requests.Response against the spec; returns the parsed body.

    @p method defaults to the request's method, @p path_pattern to the
    request's path; the pattern may be a spec template
    ("/api/v1/credentials/{id}") or a concrete path.
    """
    doc = spec()
    method = (method or response.request.method).upper()
    if path_pattern is None:
        path_pattern = urlsplit(response.request.url).path
    status = response.status_code
    op_method = "GET" if method == "HEAD" else method
    template = find_path(path_pattern)
    where = "%s %s" % (method, template or path_pattern)
    unmatched = doc.get("x-credstore-unmatched-responses", {})

    if template is None:
        responses = unmatched.get("unknownPath", {})
        where += " (no such path in the spec)"
    elif operation(op_method, template) is None:
        responses = unmatched.get("unsupportedMethod", {})
        where += " (method not in the spec for this path)"
        if status == 405:
            allow = response.headers.get("Allow", "")
            got = {m.strip() for m in allow.split(",") if m.strip()}
            want = documented_methods(template)
            if got != want:
                raise SpecViolation("%s: Allow is %r, the spec documents %s"
                                    % (where, allow, sorted(want)))
    else:
        responses = operation(op_method, template).get("responses", {})

    key = str(status)
    if key not in responses:
        key = "%dXX" % (status // 100)
    if key not in responses:
        key = "default"
    if key not in responses:
        raise SpecViolation("%s: status %d is not documented (documented: %s); body: %s"
                            % (where, status, sorted(responses), response.text[:500]))
    resp_doc = deref(responses[key], doc)
    where += " -> %d" % status

    for name, header in (resp_doc.get("headers") or {}).items():
        header = deref(header, doc)
        if name.lower() == "content-type":
            continue
        value = response.headers.get(name)
        if value is None:
            if header.get("required"):
                raise SpecViolation("%s: required header %s is missing" % (where, name))
            continue
        if "schema" in header:
            validate(_header_value(name, value, header["schema"]), header["schema"],
                     "%s: header %s" % (where, name))

    content = resp_doc.get("content") or {}
    if method == "HEAD":
        return None
    body = response.content
    if not content:
        if body:
            raise SpecViolation("%s: the spec documents no body, got %r" % (where, body[:300]))
        return None
    ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    media_key = _media_match(ctype, content)
    if media_key is None:
        raise SpecViolation("%s: Content-Type %r is not documented (documented: %s)"
                            % (where, ctype, sorted(content)))
    media = content[media_key]
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            data = json.loads(body)
        except ValueError as e:
            raise SpecViolation("%s: body is not JSON (%s): %r" % (where, e, body[:300]))
    else:
        data = response.text
    if "schema" in media:
        validate(data, media["schema"], where + " body")
    return data


# ---------------------------------------------------------------- walking

def operations():
    """(METHOD, template, operation) for every operation in the spec."""
    for template, item in spec()["paths"].items():
        for m, op in item.items():
            if m in HTTP_METHODS:
                yield m.upper(), template, op


def walk(node, path=""):
    """(json-pointer, node) for every node of @p node."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, path + "/" + str(k).replace("~", "~0").replace("/", "~1"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, "%s/%d" % (path, i))
