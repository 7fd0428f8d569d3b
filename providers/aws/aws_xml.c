/* STS answers in XML. A full XML library is not worth it for four fixed
 * documents, so this is a small bounded scanner: it walks the whole
 * document (so a truncated or garbled one is refused rather than half
 * read), keeps a stack of element names, and collects the text of a few
 * leaf elements found by their exact path from the root. It never expands
 * anything beyond the five predefined entities and character references
 * (no DTD, so no entity bombs). */
#include "aws_internal.h"

#include <stdio.h>
#include <string.h>

#define XML_DOC_MAX ((size_t)1 << 20)
#define XML_DEPTH_MAX 16
#define XML_NAME_MAX 128

struct xml_name {
  const char *p;
  size_t n;
};

/* A leaf element to collect, by its path of local names from the root. */
struct xml_field {
  const char *path[5];
  char *dst;
  size_t cap;       /* bytes of dst, including the NUL */
  bool truncate_ok; /* error text may be cut; credentials may not */
  size_t len;
  bool seen, full;
};

struct xml {
  const char *s;
  size_t len, i;
  struct xml_name stack[XML_DEPTH_MAX];
  size_t depth;
  bool root_seen, root_closed;
  struct xml_name root;
  struct xml_field *fields;
  size_t nfields;
  struct xml_field *cur; /* field whose element is open at the top of the stack */
  const char *error;     /* static text: what was wrong */
};

static bool fail(struct xml *x, const char *why)
{
  if (!x->error)
    x->error = why;
  return false;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static bool is_name_char(char c) { return !is_space(c) && !strchr("/><=\"'&!?", c) && c != '\0'; }

static bool starts(const struct xml *x, const char *lit)
{
  size_t n = strlen(lit);
  return x->len - x->i >= n && memcmp(x->s + x->i, lit, n) == 0;
}

/* Move past the next @p lit; false when the document ends first. */
static bool skip_past(struct xml *x, const char *lit)
{
  size_t n = strlen(lit);

  for (size_t j = x->i; x->len - j >= n; j++)
    if (memcmp(x->s + j, lit, n) == 0) {
      x->i = j + n;
      return true;
    }
  return fail(x, "truncated document");
}

static void skip_space(struct xml *x)
{
  while (x->i < x->len && is_space(x->s[x->i]))
    x->i++;
}

static bool read_name(struct xml *x, struct xml_name *out)
{
  size_t start = x->i;
  const char *colon;

  while (x->i < x->len && is_name_char(x->s[x->i]))
    x->i++;
  if (x->i == start)
    return fail(x, x->i == x->len ? "truncated document" : "bad element name");
  if (x->i - start > XML_NAME_MAX)
    return fail(x, "element name too long");
  /* Namespace prefixes ("sts:Code") do not matter here: compare local names. */
  out->p = x->s + start;
  out->n = x->i - start;
  colon = memchr(out->p, ':', out->n);
  while (colon) {
    out->n -= (size_t)(colon + 1 - out->p);
    out->p = colon + 1;
    colon = memchr(out->p, ':', out->n);
  }
  if (out->n == 0)
    return fail(x, "bad element name");
  return true;
}

static bool name_is(struct xml_name n, const char *lit)
{
  return n.n == strlen(lit) && memcmp(n.p, lit, n.n) == 0;
}

/* Append to the open field; oversize credentials are refused, oversize
 * error text is cut at a UTF-8 boundary. */
static bool field_append(struct xml *x, const char *p, size_t n)
{
  struct xml_field *f = x->cur;

  if (!f || f->full)
    return true;
  if (n >= f->cap - f->len) {
    if (!f->truncate_ok)
      return fail(x, "value too long");
    n = f->cap - 1 - f->len;
    while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80)
      n--; /* p[n] would be the first byte cut: keep whole characters */
    f->full = true;
  }
  memcpy(f->dst + f->len, p, n);
  f->len += n;
  f->dst[f->len] = '\0';
  return true;
}

static size_t utf8_encode(unsigned long cp, char out[4])
{
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

static bool xml_char_ok(unsigned long cp)
{
  return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
         (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

static bool char_ref(struct xml *x, const char *p, size_t n, char out[4], size_t *outn)
{
  unsigned long cp = 0;
  int base = 10;
  size_t k = 1;

  if (n > 1 && (p[1] == 'x' || p[1] == 'X')) {
    base = 16;
    k = 2;
  }
  if (k >= n || n - k > 7)
    return fail(x, "bad character reference");
  for (; k < n; k++) {
    char c = p[k];
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return fail(x, "bad character reference");
    cp = cp * (unsigned long)base + (unsigned long)d;
  }
  if (!xml_char_ok(cp))
    return fail(x, "bad character reference");
  *outn = utf8_encode(cp, out);
  return true;
}

/* At '&': decode one reference into the open field. */
static bool entity(struct xml *x)
{
  static const struct {
    const char *name;
    char c;
  } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
  const char *p = x->s + x->i + 1;
  size_t avail = x->len - x->i - 1, n = 0;
  char out[4];
  size_t outn = 0;

  while (n < avail && n < 12 && p[n] != ';')
    n++;
  if (n == avail || p[n] != ';' || n == 0)
    return fail(x, n == avail ? "truncated document" : "bad entity");
  if (p[0] == '#') {
    if (!char_ref(x, p, n, out, &outn))
      return false;
  } else {
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++)
      if (strlen(named[k].name) == n && memcmp(p, named[k].name, n) == 0) {
        out[0] = named[k].c;
        outn = 1;
      }
    if (!outn)
      return fail(x, "unknown entity");
  }
  x->i += n + 2;
  return field_append(x, out, outn);
}

static bool text(struct xml *x)
{
  while (x->i < x->len && x->s[x->i] != '<') {
    size_t start = x->i;
    if (x->s[x->i] == '&') {
      if (x->depth == 0)
        return fail(x, "text outside the root element");
      if (!entity(x))
        return false;
      continue;
    }
    /* A run up to the next markup or reference, appended whole so that a
     * cut never splits a UTF-8 sequence. */
    while (x->i < x->len && x->s[x->i] != '<' && x->s[x->i] != '&') {
      char c = x->s[x->i];
      if (x->depth == 0 && !is_space(c))
        return fail(x, "text outside the root element");
      if ((unsigned char)c < 0x20 && !is_space(c))
        return fail(x, "control character in text");
      x->i++;
    }
    if (!field_append(x, x->s + start, x->i - start))
      return false;
  }
  return true;
}

static bool cdata(struct xml *x)
{
  size_t start;

  if (x->depth == 0)
    return fail(x, "CDATA outside the root element");
  x->i += strlen("<![CDATA[");
  start = x->i;
  if (!skip_past(x, "]]>"))
    return false;
  return field_append(x, x->s + start, x->i - 3 - start);
}

/* Which field, if any, the element path now open on the stack names. */
static struct xml_field *match(struct xml *x)
{
  for (size_t k = 0; k < x->nfields; k++) {
    struct xml_field *f = &x->fields[k];
    size_t d = 0;
    while (d < 5 && f->path[d])
      d++;
    if (d != x->depth)
      continue;
    for (d = 0; d < x->depth; d++)
      if (!name_is(x->stack[d], f->path[d]))
        break;
    if (d == x->depth)
      return f;
  }
  return NULL;
}

/* One attribute (name = quoted value): skipped, but its quoting must hold. */
static bool skip_attribute(struct xml *x)
{
  struct xml_name attr;
  const char *q;

  if (!read_name(x, &attr))
    return false;
  skip_space(x);
  if (x->i >= x->len || x->s[x->i] != '=')
    return fail(x, x->i >= x->len ? "truncated document" : "bad attribute");
  x->i++;
  skip_space(x);
  if (x->i >= x->len || (x->s[x->i] != '"' && x->s[x->i] != '\''))
    return fail(x, x->i >= x->len ? "truncated document" : "bad attribute");
  q = memchr(x->s + x->i + 1, x->s[x->i], x->len - x->i - 1);
  if (!q)
    return fail(x, "truncated document");
  if (memchr(x->s + x->i + 1, '<', (size_t)(q - (x->s + x->i + 1))))
    return fail(x, "bad attribute");
  x->i = (size_t)(q - x->s) + 1;
  return true;
}

static bool open_tag(struct xml *x)
{
  struct xml_name name;
  bool empty = false;

  x->i++; /* '<' */
  if (!read_name(x, &name))
    return false;
  for (;;) { /* attributes: skipped, but their quoting must hold */
    skip_space(x);
    if (x->i >= x->len)
      return fail(x, "truncated document");
    if (x->s[x->i] == '>') {
      x->i++;
      break;
    }
    if (starts(x, "/>")) {
      x->i += 2;
      empty = true;
      break;
    }
    if (!skip_attribute(x))
      return false;
  }

  if (x->root_closed)
    return fail(x, "more than one root element");
  if (x->cur)
    return fail(x, "unexpected element inside a value");
  if (x->depth == XML_DEPTH_MAX)
    return fail(x, "document nested too deeply");
  if (x->depth == 0) {
    x->root_seen = true;
    x->root = name;
  }
  x->stack[x->depth++] = name;
  x->cur = match(x);
  if (x->cur) {
    if (x->cur->seen)
      return fail(x, "duplicate element");
    x->cur->seen = true;
  }
  if (empty) {
    x->depth--;
    x->cur = NULL;
    if (x->depth == 0)
      x->root_closed = true;
  }
  return true;
}

static bool close_tag(struct xml *x)
{
  struct xml_name name;

  x->i += 2; /* "</" */
  if (!read_name(x, &name))
    return false;
  skip_space(x);
  if (x->i >= x->len)
    return fail(x, "truncated document");
  if (x->s[x->i] != '>')
    return fail(x, "bad closing tag");
  x->i++;
  if (x->depth == 0)
    return fail(x, "closing tag without an open element");
  struct xml_name top = x->stack[x->depth - 1];
  if (top.n != name.n || memcmp(top.p, name.p, name.n) != 0)
    return fail(x, "mismatched closing tag");
  x->depth--;
  x->cur = NULL;
  if (x->depth == 0)
    x->root_closed = true;
  return true;
}

static bool markup(struct xml *x)
{
  if (starts(x, "<?")) {
    x->i += 2;
    return skip_past(x, "?>");
  }
  if (starts(x, "<!--")) {
    x->i += 4;
    return skip_past(x, "-->");
  }
  if (starts(x, "<![CDATA["))
    return cdata(x);
  if (starts(x, "<!"))
    return fail(x, "DTDs and declarations are not accepted");
  if (starts(x, "</"))
    return close_tag(x);
  return open_tag(x);
}

static bool scan(struct xml *x)
{
  if (x->len > XML_DOC_MAX)
    return fail(x, "document too large");
  if (memchr(x->s, '\0', x->len))
    return fail(x, "NUL byte in document");
  if (starts(x, "\xEF\xBB\xBF"))
    x->i += 3;
  while (x->i < x->len) {
    if (x->s[x->i] == '<') {
      if (!markup(x))
        return false;
    } else if (!text(x)) {
      return false;
    }
  }
  if (!x->root_seen)
    return fail(x, "empty document");
  if (!x->root_closed)
    return fail(x, "truncated document");
  return true;
}

/* Trim XML whitespace around a collected value, in place. */
static void trim(char *s)
{
  size_t n = strlen(s), a = 0;

  while (n > 0 && is_space(s[n - 1]))
    n--;
  while (a < n && is_space(s[a]))
    a++;
  memmove(s, s + a, n - a);
  s[n - a] = '\0';
}

/* Keys, secrets and tokens are printable ASCII without spaces. */
static bool token_ok(const char *s)
{
  if (!*s)
    return false;
  for (; *s; s++)
    if (*s < 0x21 || *s > 0x7e)
      return false;
  return true;
}

/* The leaf fields of one action's answer and of STS's two error shapes. */
struct fields {
  struct xml_field f[12];
  size_t n;
};

static void add(struct fields *fs, const char *const *path, char *dst, size_t cap, bool cut)
{
  struct xml_field *f = &fs->f[fs->n++];
  size_t d = 0;

  memset(f, 0, sizeof *f);
  for (; path[d]; d++)
    f->path[d] = path[d];
  f->dst = dst;
  f->cap = cap;
  f->truncate_ok = cut;
}

#define P(...) ((const char *const[]){__VA_ARGS__, NULL})

static const char *const roots[] = {
    [CS_STS_ASSUME_ROLE] = "AssumeRoleResponse",
    [CS_STS_GET_SESSION_TOKEN] = "GetSessionTokenResponse",
    [CS_STS_GET_CALLER_IDENTITY] = "GetCallerIdentityResponse",
};
static const char *const results[] = {
    [CS_STS_ASSUME_ROLE] = "AssumeRoleResult",
    [CS_STS_GET_SESSION_TOKEN] = "GetSessionTokenResult",
    [CS_STS_GET_CALLER_IDENTITY] = "GetCallerIdentityResult",
};

static void action_fields(struct fields *fs, enum cs_sts_action a, struct cs_sts_result *r,
                          char *expiration, size_t exp_cap, struct cs_net_error *e)
{
  const char *root = roots[a], *res = results[a];
  struct cs_aws_creds *c = &r->creds;

  if (a == CS_STS_GET_CALLER_IDENTITY) {
    add(fs, P(root, res, "Arn"), r->arn, sizeof r->arn, false);
    add(fs, P(root, res, "Account"), r->account, sizeof r->account, false);
    add(fs, P(root, res, "UserId"), r->user_id, sizeof r->user_id, false);
  } else {
    add(fs, P(root, res, "Credentials", "AccessKeyId"), c->access_key_id, sizeof c->access_key_id,
        false);
    add(fs, P(root, res, "Credentials", "SecretAccessKey"), c->secret_access_key,
        sizeof c->secret_access_key, false);
    add(fs, P(root, res, "Credentials", "SessionToken"), c->session_token, sizeof c->session_token,
        false);
    add(fs, P(root, res, "Credentials", "Expiration"), expiration, exp_cap, false);
    if (a == CS_STS_ASSUME_ROLE)
      add(fs, P(root, res, "AssumedRoleUser", "Arn"), r->arn, sizeof r->arn, false);
  }
  add(fs, P("ErrorResponse", "Error", "Code"), e->code, sizeof e->code, true);
  add(fs, P("ErrorResponse", "Error", "Message"), e->message, sizeof e->message, true);
  /* The older query-API shape, seen from some STS-compatible services. */
  add(fs, P("Response", "Errors", "Error", "Code"), e->code, sizeof e->code, true);
  add(fs, P("Response", "Errors", "Error", "Message"), e->message, sizeof e->message, true);
}
#undef P

/* The action's own answer, complete? @return NULL or what is missing. */
static const char *incomplete(enum cs_sts_action a, struct cs_sts_result *r, const char *expiration)
{
  if (a == CS_STS_GET_CALLER_IDENTITY)
    return token_ok(r->arn) && token_ok(r->account) ? NULL : "STS response lacks Arn or Account";
  if (!token_ok(r->creds.access_key_id) || !token_ok(r->creds.secret_access_key) ||
      !token_ok(r->creds.session_token))
    return "STS response lacks AccessKeyId, SecretAccessKey or SessionToken";
  if (cs_time_parse(expiration, &r->creds.expiration) != CS_OK || r->creds.expiration <= 0)
    return "STS response has no valid Expiration";
  if (r->arn[0] && !token_ok(r->arn))
    return "STS response has a malformed AssumedRoleUser Arn";
  return NULL;
}

enum cs_err cs_aws_parse_sts(const char *body, size_t len, enum cs_sts_action action,
                             struct cs_sts_result *out, struct cs_net_error *err)
{
  struct cs_sts_result r = {0};
  char expiration[64] = "";
  struct cs_net_error e = {0};
  struct fields fs = {.n = 0};
  struct xml x = {.s = body ? body : "", .len = body ? len : 0};
  const char *missing;
  enum cs_err rc = CS_ERR_INVALID;

  action_fields(&fs, action, &r, expiration, sizeof expiration, &e);
  x.fields = fs.f;
  x.nfields = fs.n;
  if (!scan(&x)) {
    cs_net_fail(err, CS_ERR_INVALID, "MalformedResponse", "STS response is not usable XML: %s",
                x.error);
    goto out;
  }
  for (size_t k = 0; k < x.nfields; k++)
    trim(fs.f[k].dst);

  if (name_is(x.root, "ErrorResponse") || name_is(x.root, "Response")) {
    if (!token_ok(e.code)) {
      cs_net_fail(err, CS_ERR_INVALID, "MalformedResponse", "STS error document without a Code");
      goto out;
    }
    if (err)
      *err = e;
    rc = CS_ERR_UPSTREAM;
    goto out;
  }
  if (!name_is(x.root, roots[action])) {
    cs_net_fail(err, CS_ERR_INVALID, "MalformedResponse",
                "STS response is neither %s nor ErrorResponse", roots[action]);
    goto out;
  }
  if ((missing = incomplete(action, &r, expiration))) {
    cs_net_fail(err, CS_ERR_INVALID, "MalformedResponse", "%s", missing);
    goto out;
  }
  *out = r;
  rc = CS_OK;
out:
  cs_sts_result_wipe(&r);
  return rc;
}
