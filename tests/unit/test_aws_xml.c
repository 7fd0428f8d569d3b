/* Unit tests for providers/aws/: the STS XML parser and the IMDS JSON
 * parser on real-looking, hostile, truncated and oversize documents; the
 * form encoder; and the resolver's request checks and retry bound, which
 * need no network (the only endpoint used is a closed loopback port). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aws_internal.h"

#define EXP_2026 1795366800 /* 2026-11-22T17:00:00Z */

static const char assume_ok[] =
    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
    "  <AssumeRoleResult>\n"
    "    <SourceIdentity>DevUser123</SourceIdentity>\n"
    "    <AssumedRoleUser>\n"
    "      <Arn>arn:aws:sts::123456789012:assumed-role/demo/credstore</Arn>\n"
    "      <AssumedRoleId>ARO123EXAMPLE123:credstore</AssumedRoleId>\n"
    "    </AssumedRoleUser>\n"
    "    <Credentials>\n"
    "      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>\n"
    "      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>\n"
    "      <SessionToken>\n"
    "       AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW\n"
    "      </SessionToken>\n"
    "      <Expiration>2026-11-22T17:00:00Z</Expiration>\n"
    "    </Credentials>\n"
    "    <PackedPolicySize>6</PackedPolicySize>\n"
    "  </AssumeRoleResult>\n"
    "  <ResponseMetadata>\n"
    "    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n"
    "  </ResponseMetadata>\n"
    "</AssumeRoleResponse>\n";

static const char error_denied[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
    "  <Error>\n"
    "    <Type>Sender</Type>\n"
    "    <Code>AccessDenied</Code>\n"
    "    <Message>User: arn:aws:iam::123456789012:user/scanner is not authorized to perform: "
    "sts:AssumeRole on resource: arn:aws:iam::123456789012:role/demo</Message>\n"
    "  </Error>\n"
    "  <RequestId>4a0b8f3e-0000-4000-8000-000000000000</RequestId>\n"
    "</ErrorResponse>\n";

/* Parse @p doc expecting @p want; on anything but CS_OK the output must be
 * left untouched (it is pre-filled with a sentinel). */
static enum cs_err parse(const char *doc, size_t len, struct cs_aws_creds *out,
                         struct cs_net_error *err)
{
  enum cs_err e;

  struct cs_sts_result r;

  memset(&r, 'S', sizeof r);
  memset(out, 'S', sizeof *out);
  memset(err, 0, sizeof *err);
  e = cs_aws_parse_sts(doc, len, CS_STS_ASSUME_ROLE, &r, err);
  if (e != CS_OK) {
    for (size_t i = 0; i < sizeof r; i++)
      assert_int_equal(((unsigned char *)&r)[i], 'S');
  } else {
    *out = r.creds;
    assert_string_equal(r.account, "");
  }
  cs_sts_result_wipe(&r);
  return e;
}

static enum cs_err parse_str(const char *doc, struct cs_aws_creds *out, struct cs_net_error *err)
{
  return parse(doc, strlen(doc), out, err);
}

/* An AssumeRoleResponse whose credentials block is @p creds. */
static char *wrap_creds(const char *creds)
{
  static const char head[] = "<AssumeRoleResponse><AssumeRoleResult><Credentials>";
  static const char tail[] = "</Credentials></AssumeRoleResult></AssumeRoleResponse>";
  size_t n = strlen(head) + strlen(creds) + strlen(tail) + 1;
  char *s = malloc(n);

  assert_non_null(s);
  snprintf(s, n, "%s%s%s", head, creds, tail);
  return s;
}

static char *repeat(char c, size_t n)
{
  char *s = malloc(n + 1);

  assert_non_null(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

/* --------------------------------------------------------------- STS XML */

static void test_assume_role_ok(void **state)
{
  struct cs_aws_creds c;
  struct cs_net_error err;

  assert_int_equal(parse_str(assume_ok, &c, &err), CS_OK);
  assert_string_equal(c.access_key_id, "ASIAIOSFODNN7EXAMPLE");
  assert_string_equal(c.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
  assert_string_equal(c.session_token,
                      "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW");
  assert_int_equal(c.expiration, EXP_2026);
  cs_aws_creds_wipe(&c);
  for (size_t i = 0; i < sizeof c; i++)
    assert_int_equal(((unsigned char *)&c)[i], 0);
}

static void test_error_response(void **state)
{
  struct cs_aws_creds c;
  struct cs_net_error err;

  assert_int_equal(parse_str(error_denied, &c, &err), CS_ERR_UPSTREAM);
  assert_string_equal(err.code, "AccessDenied");
  assert_string_equal(err.message,
                      "User: arn:aws:iam::123456789012:user/scanner is not authorized to perform: "
                      "sts:AssumeRole on resource: arn:aws:iam::123456789012:role/demo");

  /* The older query-API shape. */
  assert_int_equal(parse_str("<Response><Errors><Error><Code>Throttling</Code>"
                             "<Message>Rate exceeded</Message></Error></Errors></Response>",
                             &c, &err),
                   CS_ERR_UPSTREAM);
  assert_string_equal(err.code, "Throttling");
  assert_string_equal(err.message, "Rate exceeded");

  /* No message is fine; no code is not. */
  assert_int_equal(
      parse_str("<ErrorResponse><Error><Code>X</Code></Error></ErrorResponse>", &c, &err),
      CS_ERR_UPSTREAM);
  assert_string_equal(err.message, "");
  assert_int_equal(
      parse_str("<ErrorResponse><Error><Message>m</Message></Error></ErrorResponse>", &c, &err),
      CS_ERR_INVALID);
  assert_string_equal(err.code, "MalformedResponse");
}

static void test_entities_and_cdata(void **state)
{
  struct cs_aws_creds c;
  struct cs_net_error err;
  char *doc = wrap_creds("<AccessKeyId>ASIA&#65;&#x42;CDEFGHIJKLMN</AccessKeyId>"
                         "<SecretAccessKey>a&amp;b&lt;c&gt;d&quot;e&apos;f&#47;g</SecretAccessKey>"
                         "<SessionToken><![CDATA[tok<&>en]]>tail</SessionToken>"
                         "<Expiration>2026-11-22T17:00:00.000Z</Expiration>");

  assert_int_equal(parse_str(doc, &c, &err), CS_OK);
  assert_string_equal(c.access_key_id, "ASIAABCDEFGHIJKLMN");
  assert_string_equal(c.secret_access_key, "a&b<c>d\"e'f/g");
  assert_string_equal(c.session_token, "tok<&>entail");
  assert_int_equal(c.expiration, EXP_2026);
  free(doc);

  assert_int_equal(parse_str("<ErrorResponse><Error><Code>AccessDenied</Code><Message>"
                             "caf&#xE9; &#x1F600; &quot;q&quot;</Message></Error></ErrorResponse>",
                             &c, &err),
                   CS_ERR_UPSTREAM);
  assert_string_equal(err.message, "caf\xC3\xA9 \xF0\x9F\x98\x80 \"q\"");
}

static void test_prefixes_comments_attributes(void **state)
{
  struct cs_aws_creds c;
  struct cs_net_error err;
  const char *doc =
      "\xEF\xBB\xBF<?xml version=\"1.0\"?><!-- <AccessKeyId>EVIL</AccessKeyId> -->"
      "<sts:AssumeRoleResponse xmlns:sts=\"https://sts.amazonaws.com/doc/2011-06-15/\" "
      "odd='a>b' other = \"x\"><sts:AssumeRoleResult><sts:Credentials>"
      "<sts:AccessKeyId>ASIAIOSFODNN7EXAMPLE</sts:AccessKeyId>"
      "<!-- <SecretAccessKey>EVIL</SecretAccessKey> -->"
      "<sts:SecretAccessKey>secret</sts:SecretAccessKey>"
      "<sts:SessionToken>token</sts:SessionToken>"
      "<sts:Expiration>2026-11-22T18:00:00+01:00</sts:Expiration>"
      "<?pi ignored?></sts:Credentials></sts:AssumeRoleResult></sts:AssumeRoleResponse>\n";

  assert_int_equal(parse_str(doc, &c, &err), CS_OK);
  assert_string_equal(c.access_key_id, "ASIAIOSFODNN7EXAMPLE");
  assert_string_equal(c.secret_access_key, "secret");
  assert_int_equal(c.expiration, EXP_2026);
}

/* Every proper prefix of a valid document is refused. */
static void test_truncated(void **state)
{
  struct cs_aws_creds c;
  struct cs_net_error err;
  size_t n = strlen(assume_ok);

  /* The last byte is a newline after the root: drop it and the rest must fail. */
  for (size_t len = 0; len < n - 1; len++) {
    char *copy = malloc(len + 1); /* exact size: ASan catches a read past len */
    assert_non_null(copy);
    memcpy(copy, assume_ok, len);
    assert_int_not_equal(parse(copy, len, &c, &err), CS_OK);
    assert_string_equal(err.code, "MalformedResponse");
    free(copy);
  }
  for (size_t len = 0; len < strlen(error_denied) - 1; len++)
    assert_int_not_equal(parse(error_denied, len, &c, &err), CS_ERR_UPSTREAM);
  assert_int_equal(parse(NULL, 0, &c, &err), CS_ERR_INVALID);
}

static void test_garbage(void **state)
{
  static const char *const docs[] = {
      "",
      "   ",
      "not xml at all",
      "{\"AccessKeyId\":\"x\"}",
      "<",
      "<>",
      "</AssumeRoleResponse>",
      "<a><b></a></b>",
      "<a></a><b></b>",
      "<a></a>trailing",
      "lead<a></a>",
      "<a>&foo;</a>",
      "<a>&amp</a>",
      "<a>&#0;</a>",
      "<a>&#xD800;</a>",
      "<a>&#x110000;</a>",
      "<a>&#99999999;</a>",
      "<a>&#x;</a>",
      "<a>\x01</a>",
      "<a b></a>",
      "<a b=c></a>",
      "<a b=\"c></a>",
      "<a b=\"<\"></a>",
      "<a><![CDATA[x</a>",
      "<![CDATA[x]]><a></a>",
      "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
      "<a><!-- unterminated</a>",
      "<a><!--></a>",
      "<a><?></a>",
      "<?xml unterminated",
      "<Foo></Foo>",
      "<AssumeRoleResponse/>",
      "<ErrorResponse/>",
  };
  struct cs_aws_creds c;
  struct cs_net_error err;

  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
    enum cs_err e = parse_str(docs[i], &c, &err);
    if (e != CS_ERR_INVALID)
      fail_msg("document %zu (%s) gave %d", i, docs[i], (int)e);
    assert_string_equal(err.code, "MalformedResponse");
    assert_true(err.message[0] != '\0');
  }

  /* A NUL inside the given length. */
  static const char nul[] = "<ErrorResponse><Error><Code>A\0B</Code></Error></ErrorResponse>";
  assert_int_equal(parse(nul, sizeof nul - 1, &c, &err), CS_ERR_INVALID);
}

static void test_depth_and_duplicates(void **state)
{
  struct cs_aws_creds c;
  struct cs_net_error err;
  char deep[20 * 7 + 1];
  char *doc;

  for (int i = 0; i < 20; i++) {
    memcpy(deep + 3 * i, "<a>", 3);
    memcpy(deep + 60 + 4 * i, "</a>", 4);
  }
  deep[140] = '\0';
  assert_int_equal(parse_str(deep, &c, &err), CS_ERR_INVALID);
  assert_non_null(strstr(err.message, "deep"));
  /* 16 levels are fine (an unknown root, so still not usable). */
  assert_int_equal(parse(deep + 4 * 3, 16 * 7, &c, &err), CS_ERR_INVALID);
  assert_null(strstr(err.message, "deep"));

  doc = wrap_creds("<AccessKeyId>ASIAONE</AccessKeyId><AccessKeyId>ASIATWO</AccessKeyId>"
                   "<SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>"
                   "<Expiration>2026-11-22T17:00:00Z</Expiration>");
  assert_int_equal(parse_str(doc, &c, &err), CS_ERR_INVALID);
  assert_non_null(strstr(err.message, "duplicate"));
  free(doc);

  /* A value must be text, not elements. */
  doc = wrap_creds("<AccessKeyId><x>ASIA</x></AccessKeyId>"
                   "<SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>"
                   "<Expiration>2026-11-22T17:00:00Z</Expiration>");
  assert_int_equal(parse_str(doc, &c, &err), CS_ERR_INVALID);
  free(doc);
}

static void test_missing_fields(void **state)
{
  static const char *const creds[] = {
      /* no SessionToken */
      "<AccessKeyId>A</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
      "<Expiration>2026-11-22T17:00:00Z</Expiration>",
      /* no Expiration */
      "<AccessKeyId>A</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
      "<SessionToken>t</SessionToken>",
      /* bad Expiration */
      "<AccessKeyId>A</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
      "<SessionToken>t</SessionToken><Expiration>tomorrow</Expiration>",
      /* empty AccessKeyId */
      "<AccessKeyId> </AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
      "<SessionToken>t</SessionToken><Expiration>2026-11-22T17:00:00Z</Expiration>",
      /* a space inside a secret */
      "<AccessKeyId>A</AccessKeyId><SecretAccessKey>s s</SecretAccessKey>"
      "<SessionToken>t</SessionToken><Expiration>2026-11-22T17:00:00Z</Expiration>",
      /* the epoch is not an expiry */
      "<AccessKeyId>A</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
      "<SessionToken>t</SessionToken><Expiration>1970-01-01T00:00:00Z</Expiration>",
      /* no SecretAccessKey */
      "<AccessKeyId>A</AccessKeyId>"
      "<SessionToken>t</SessionToken><Expiration>2026-11-22T17:00:00Z</Expiration>",
  };
  struct cs_aws_creds c;
  struct cs_net_error err;

  for (size_t i = 0; i < sizeof creds / sizeof creds[0]; i++) {
    char *doc = wrap_creds(creds[i]);
    if (parse_str(doc, &c, &err) != CS_ERR_INVALID)
      fail_msg("case %zu accepted", i);
    assert_string_equal(err.code, "MalformedResponse");
    free(doc);
  }
  /* The right fields under the wrong parent do not count. */
  assert_int_equal(parse_str("<AssumeRoleResponse><AccessKeyId>A</AccessKeyId>"
                             "<SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>"
                             "<Expiration>2026-11-22T17:00:00Z</Expiration></AssumeRoleResponse>",
                             &c, &err),
                   CS_ERR_INVALID);
}

static void test_oversize(void **state)
{
  struct cs_aws_creds c;
  struct cs_net_error err;
  char buf[8192];
  char *v, *doc;

  /* 128 characters fit the AccessKeyId field; 129 do not. */
  for (size_t n = 128; n <= 129; n++) {
    v = repeat('A', n);
    snprintf(buf, sizeof buf,
             "<AccessKeyId>%s</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
             "<SessionToken>t</SessionToken><Expiration>2026-11-22T17:00:00Z</Expiration>",
             v);
    doc = wrap_creds(buf);
    assert_int_equal(parse_str(doc, &c, &err), n == 128 ? CS_OK : CS_ERR_INVALID);
    if (n == 128)
      assert_string_equal(c.access_key_id, v);
    else
      assert_non_null(strstr(err.message, "too long"));
    free(doc);
    free(v);
  }
  /* SessionToken: 2047 fit. */
  for (size_t n = 2047; n <= 2048; n++) {
    v = repeat('t', n);
    snprintf(buf, sizeof buf,
             "<AccessKeyId>A</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
             "<SessionToken>%s</SessionToken><Expiration>2026-11-22T17:00:00Z</Expiration>",
             v);
    doc = wrap_creds(buf);
    assert_int_equal(parse_str(doc, &c, &err), n == 2047 ? CS_OK : CS_ERR_INVALID);
    free(doc);
    free(v);
  }
  /* Entities count after decoding: 128 × "&#65;" is 128 characters. */
  {
    char ent[128 * 5 + 1];
    for (int i = 0; i < 128; i++)
      memcpy(ent + 5 * i, "&#65;", 5);
    ent[128 * 5] = '\0';
    snprintf(buf, sizeof buf,
             "<AccessKeyId>%s</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
             "<SessionToken>t</SessionToken><Expiration>2026-11-22T17:00:00Z</Expiration>",
             ent);
    doc = wrap_creds(buf);
    assert_int_equal(parse_str(doc, &c, &err), CS_OK);
    assert_int_equal(strlen(c.access_key_id), 128);
    free(doc);
  }

  /* Error text is cut, not refused, and never in the middle of a character. */
  v = malloc(3 * 400 + 1);
  assert_non_null(v);
  for (int i = 0; i < 400; i++)
    memcpy(v + 3 * i, "\xE2\x82\xAC", 3); /* € */
  v[1200] = '\0';
  snprintf(buf, sizeof buf,
           "<ErrorResponse><Error><Code>%s</Code><Message>%s</Message></Error>"
           "</ErrorResponse>",
           "VeryLongCodeVeryLongCodeVeryLongCodeVeryLongCodeVeryLongCodeVeryLongCode", v);
  assert_int_equal(parse_str(buf, &c, &err), CS_ERR_UPSTREAM);
  assert_int_equal(strlen(err.code), sizeof err.code - 1);
  assert_int_equal(strlen(err.message), 255); /* 85 whole characters */
  assert_memory_equal(err.message + 252, "\xE2\x82\xAC", 3);
  free(v);

  /* A document larger than the scanner's cap. */
  size_t big = ((size_t)1 << 20) + 16;
  v = repeat(' ', big);
  memcpy(v, "<a>", 3);
  memcpy(v + big - 4, "</a>", 4);
  assert_int_equal(parse(v, big, &c, &err), CS_ERR_INVALID);
  free(v);
}

/* ------------------------------------------------------------ IMDS JSON */

static enum cs_err imds(const char *doc, struct cs_aws_creds *c, struct cs_net_error *err)
{
  memset(c, 'S', sizeof *c);
  memset(err, 0, sizeof *err);
  return cs_aws_parse_imds_credentials(doc, doc ? strlen(doc) : 0, c, err);
}

static void test_imds_json(void **state)
{
  struct cs_aws_creds c;
  struct cs_net_error err;
  char buf[4096];
  char *v;

  assert_int_equal(
      imds("{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-11-22T11:00:00Z\",\n"
           "  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAIMDSEXAMPLE1\",\n"
           "  \"SecretAccessKey\" : \"imds/secret+key\",\n  \"Token\" : \"IQoJb3Jp==\",\n"
           "  \"Expiration\" : \"2026-11-22T17:00:00Z\"\n}",
           &c, &err),
      CS_OK);
  assert_string_equal(c.access_key_id, "ASIAIMDSEXAMPLE1");
  assert_string_equal(c.secret_access_key, "imds/secret+key");
  assert_string_equal(c.session_token, "IQoJb3Jp==");
  assert_int_equal(c.expiration, EXP_2026);

  assert_int_equal(imds("{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"Message\":\"EC2 cannot "
                        "assume the role\"}",
                        &c, &err),
                   CS_ERR_UPSTREAM);
  assert_string_equal(err.code, "AssumeRoleUnauthorizedAccess");
  assert_string_equal(err.message, "EC2 cannot assume the role");

  assert_int_equal(imds("{\"Code\":\"\",\"Message\":\"m\"}", &c, &err), CS_ERR_UPSTREAM);
  assert_string_equal(err.code, "IMDSError");

  static const char *const bad[] = {
      NULL,
      "{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Token\":\"t\","
      "\"Expiration\":\"1970-01-01T00:00:00Z\"}",
      "",
      "garbage",
      "[]",
      "\"Success\"",
      "{}",
      "{\"Code\":1}",
      "{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\","
      "\"Expiration\":\"2026-11-22T17:00:00Z\"}",
      "{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Token\":\"t\"}",
      "{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Token\":\"t\","
      "\"Expiration\":\"soon\"}",
      "{\"Code\":\"Success\",\"AccessKeyId\":7,\"SecretAccessKey\":\"s\",\"Token\":\"t\","
      "\"Expiration\":\"2026-11-22T17:00:00Z\"}",
      "{\"Code\":\"Success\",\"AccessKeyId\":\"A B\",\"SecretAccessKey\":\"s\",\"Token\":\"t\","
      "\"Expiration\":\"2026-11-22T17:00:00Z\"}",
      "{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Token\":\"t\","
      "\"Expiration\":\"2026-11-22T17:00:00Z\"", /* truncated */
      "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (imds(bad[i], &c, &err) != CS_ERR_INVALID)
      fail_msg("IMDS document %zu accepted", i);
    assert_string_equal(err.code, "MalformedResponse");
    for (size_t k = 0; k < sizeof c; k++)
      assert_int_equal(((unsigned char *)&c)[k], 'S');
  }

  /* Token: 2047 fit, 2048 do not. */
  for (size_t n = 2047; n <= 2048; n++) {
    v = repeat('T', n);
    snprintf(buf, sizeof buf,
             "{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\","
             "\"Token\":\"%s\",\"Expiration\":\"2026-11-22T17:00:00Z\"}",
             v);
    assert_int_equal(imds(buf, &c, &err), n == 2047 ? CS_OK : CS_ERR_INVALID);
    free(v);
  }
}

/* ----------------------------------------------------- form and resolver */

static void test_form_escape(void **state)
{
  struct cs_buf b;

  cs_buf_init(&b, 1024);
  assert_int_equal(cs_form_escape(&b, "arn:aws:iam::123456789012:role/a b+c=d,e.f@g_h-i~"), CS_OK);
  assert_string_equal(b.data,
                      "arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fa%20b%2Bc%3Dd%2Ce.f%40g_h-i~");
  cs_buf_free(&b);
  cs_buf_init(&b, 5);
  assert_int_equal(cs_form_escape(&b, "a/b"), CS_OK); /* "a%2Fb" is 5 */
  assert_int_equal(cs_form_escape(&b, "c"), CS_ERR_TOO_LARGE);
  cs_buf_free(&b);
}

static struct cs_aws_request base_req(void)
{
  return (struct cs_aws_request){
      .cred_id = "aws-prod",
      .version = 1,
      .access_key_id = "AKIAIOSFODNN7EXAMPLE",
      .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  };
}

/* The STS and IMDS counters, summed as /metrics shows them. */
struct aws_stats {
  uint64_t sts_calls, imds_calls, cache_hits, cache_misses;
};

static void get_stats(struct cs_broker *b, struct aws_stats *out)
{
  struct cs_broker_stats st;

  cs_broker_get_stats(b, &st);
  out->sts_calls = st.kind[CS_KIND_STS].calls;
  out->imds_calls = st.kind[CS_KIND_IMDS].calls;
  out->cache_hits = st.kind[CS_KIND_STS].cache_hits + st.kind[CS_KIND_IMDS].cache_hits;
  out->cache_misses = st.kind[CS_KIND_STS].cache_misses + st.kind[CS_KIND_IMDS].cache_misses;
}

static void test_resolver_static_and_checks(void **state)
{
  struct cs_broker_config cfg = {.sts_endpoint = "http://127.0.0.1:1/",
                                 .imds_endpoint = "http://127.0.0.1:1",
                                 .timeout_ms = 2000};
  struct cs_broker *r;
  struct cs_aws_request req = base_req();
  struct cs_aws_creds c;
  struct cs_net_error err;
  struct aws_stats st;
  char msg[256];

  assert_int_equal(cs_broker_create(&cfg, &r, msg, sizeof msg), CS_OK);
  assert_int_equal(cs_broker_aws(r, &req, &c, &err), CS_OK);
  assert_string_equal(c.access_key_id, req.access_key_id);
  assert_string_equal(c.secret_access_key, req.secret_key);
  assert_string_equal(c.session_token, "");
  assert_int_equal(c.expiration, 0);
  /* AssumeRole options do not matter without a role. */
  req.duration_seconds = 5;
  req.session_name = "x";
  assert_int_equal(cs_broker_aws(r, &req, &c, &err), CS_OK);

  /* Each of these is refused before any network use. */
  for (int i = 0; i < 12; i++) {
    req = base_req();
    req.role_arn = "arn:aws:iam::123456789012:role/demo";
    switch (i) {
    case 0:
      req.session_name = "x";
      break; /* too short */
    case 1:
      req.session_name = "has space";
      break;
    case 2:
      req.session_name = "a123456789012345678901234567890123456789012345678901234567890123456";
      break;
    case 3:
      req.duration_seconds = 899;
      break;
    case 4:
      req.duration_seconds = 43201;
      break;
    case 5:
      req.regional_endpoint = true;
      break; /* no region */
    case 6:
      req.regional_endpoint = true;
      req.region = "eu west";
      break;
    case 7:
      req.external_id = "x";
      break;
    case 8:
      req.external_id = "bad id";
      break;
    case 9:
      req.use_instance_role = true;
      break; /* keys too */
    case 10:
      req.access_key_id = NULL;
      break;
    case 11:
      req.secret_key = "with space";
      break;
    }
    memset(&c, 'S', sizeof c);
    if (cs_broker_aws(r, &req, &c, &err) != CS_ERR_INVALID)
      fail_msg("request %d was not refused", i);
    assert_string_equal(err.code, "InvalidRequest");
    assert_true(err.field[0] != '\0'); /* names the parameter at fault */
    assert_int_equal(((unsigned char *)&c)[0], 'S');
  }
  get_stats(r, &st);
  assert_int_equal(st.sts_calls, 0);
  assert_int_equal(st.imds_calls, 0);
  assert_int_equal(st.cache_hits + st.cache_misses, 0);

  /* A valid session name at both ends of the pattern is accepted (and then
   * fails upstream: nothing listens on port 1). Transport failures are
   * retried: 3 attempts, then 502 with what went wrong. */
  req = base_req();
  req.role_arn = "arn:aws:iam::123456789012:role/demo";
  req.session_name = "a_+=,.@-Z9";
  assert_int_equal(cs_broker_aws(r, &req, &c, &err), CS_ERR_UPSTREAM);
  assert_string_equal(err.code, "STSUnreachable");
  get_stats(r, &st);
  assert_int_equal(st.sts_calls, 3);
  assert_int_equal(st.cache_misses, 1);

  /* Errors are not cached: the next resolve tries again. */
  assert_int_equal(cs_broker_aws(r, &req, &c, &err), CS_ERR_UPSTREAM);
  get_stats(r, &st);
  assert_int_equal(st.sts_calls, 6);

  /* The instance role with IMDS down: one token attempt, no retry storm. */
  req = base_req();
  req.access_key_id = req.secret_key = NULL;
  req.use_instance_role = true;
  assert_int_equal(cs_broker_aws(r, &req, &c, &err), CS_ERR_UPSTREAM);
  assert_string_equal(err.code, "IMDSUnreachable");
  get_stats(r, &st);
  assert_int_equal(st.imds_calls, 1);
  assert_int_equal(st.sts_calls, 6);
  cs_broker_free(r);

  /* GetSessionToken is for static keys without a role. */
  assert_int_equal(cs_broker_create(&cfg, &r, msg, sizeof msg), CS_OK);
  req = base_req();
  req.session = true;
  req.role_arn = "arn:aws:iam::123456789012:role/demo";
  assert_int_equal(cs_broker_aws(r, &req, &c, &err), CS_ERR_INVALID);
  assert_string_equal(err.field, "format");
  req.role_arn = NULL;
  req.duration_seconds = 100;
  assert_int_equal(cs_broker_aws(r, &req, &c, &err), CS_ERR_INVALID);
  assert_string_equal(err.field, "durationSeconds");
  get_stats(r, &st);
  assert_int_equal(st.sts_calls, 0);
  cs_broker_free(r);

  /* Endpoints must be http(s) URLs, and plain http only to loopback: a bad
   * option fails the start, with a message naming it. */
  static const char *const bad_sts[] = {
      "ftp://127.0.0.1/",          "https://127.0.0.1:1/\x01", "127.0.0.1:1",
      "http://10.0.0.1/",          "http://sts.example.com/",  "http://[::ffff:10.0.0.1]/",
      "http://user:pw@127.0.0.1/", "http://0x0a000001/",       "http://169.254.169.254/"};
  for (size_t i = 0; i < sizeof bad_sts / sizeof bad_sts[0]; i++) {
    cfg.sts_endpoint = bad_sts[i];
    msg[0] = '\0';
    if (cs_broker_create(&cfg, &r, msg, sizeof msg) != CS_ERR_INVALID)
      fail_msg("--sts-endpoint %s accepted", bad_sts[i]);
    assert_non_null(strstr(msg, "--sts-endpoint"));
  }
  /* Loopback in any spelling libcurl reads as loopback is fine over http. */
  static const char *const good_sts[] = {"http://127.0.0.1:9/", "http://localhost:9/",
                                         "http://[::1]:9/",     "http://2130706433:9/",
                                         "http://127.1:9/",     "https://sts.example.com/"};
  for (size_t i = 0; i < sizeof good_sts / sizeof good_sts[0]; i++) {
    cfg.sts_endpoint = good_sts[i];
    if (cs_broker_create(&cfg, &r, msg, sizeof msg) != CS_OK)
      fail_msg("--sts-endpoint %s refused: %s", good_sts[i], msg);
    cs_broker_free(r);
  }
  cfg.sts_endpoint = "http://127.0.0.1:1/";
  cfg.imds_endpoint = "169.254.169.254";
  assert_int_equal(cs_broker_create(&cfg, &r, msg, sizeof msg), CS_ERR_INVALID);
  /* IMDS is link-local by nature: plain http to it is the normal case. */
  cfg.imds_endpoint = "http://169.254.169.254";
  assert_int_equal(cs_broker_create(&cfg, &r, msg, sizeof msg), CS_OK);
  cs_broker_free(r);
  struct cs_broker_config other = {.azure_authority_host = "http://login.example.com"};
  assert_int_equal(cs_broker_create(&other, &r, msg, sizeof msg), CS_ERR_INVALID);
  assert_non_null(strstr(msg, "--azure-authority-host"));
  other = (struct cs_broker_config){.ibm_iam_endpoint = "http://192.168.1.1"};
  assert_int_equal(cs_broker_create(&other, &r, msg, sizeof msg), CS_ERR_INVALID);
  other = (struct cs_broker_config){.gcp_token_url = "http://[fe80::1]/token"};
  assert_int_equal(cs_broker_create(&other, &r, msg, sizeof msg), CS_ERR_INVALID);
  other = (struct cs_broker_config){.outbound_ca_file = "/nonexistent/ca.pem"};
  assert_int_equal(cs_broker_create(&other, &r, msg, sizeof msg), CS_ERR_INVALID);
  assert_non_null(strstr(msg, "--outbound-ca-file"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_assume_role_ok),
      cmocka_unit_test(test_error_response),
      cmocka_unit_test(test_entities_and_cdata),
      cmocka_unit_test(test_prefixes_comments_attributes),
      cmocka_unit_test(test_truncated),
      cmocka_unit_test(test_garbage),
      cmocka_unit_test(test_depth_and_duplicates),
      cmocka_unit_test(test_missing_fields),
      cmocka_unit_test(test_oversize),
      cmocka_unit_test(test_imds_json),
      cmocka_unit_test(test_form_escape),
      cmocka_unit_test(test_resolver_static_and_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
