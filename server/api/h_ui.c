/* The web console (API.md §10): `/` and `/ui` redirect to `/ui/`, which
 * serves index.html; every other file of server/api/ui/ is served under
 * /ui/assets/<build>/<name>. The files are compiled in (ui_files.c), so the
 * console needs nothing at run time and can't be changed on disk. */
#include "http.h"

#include <stdlib.h>
#include <string.h>

/* What a browser must do with every console page: run only scripts and
 * styles from this origin (no inline ones), never render it in a frame,
 * send no Referer (URLs name credentials), trust the content type. */
static void ui_headers(struct cs_resp *resp, const char *cache)
{
  cs_resp_header(resp, "Content-Security-Policy", "default-src 'self'");
  cs_resp_header(resp, "X-Frame-Options", "DENY");
  cs_resp_header(resp, "Referrer-Policy", "no-referrer");
  cs_resp_header(resp, "X-Content-Type-Options", "nosniff");
  cs_resp_header(resp, "Cache-Control", "%s", cache);
}

static const char *content_type(const char *name)
{
  static const struct {
    const char *ext, *type;
  } types[] = {
      {".html", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
  };
  const char *dot = strrchr(name, '.');
  for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
    if (!strcmp(dot, types[i].ext))
      return types[i].type;
  return "application/octet-stream";
}

static const struct cs_ui_file *ui_find(const char *name)
{
  for (size_t i = 0; i < cs_ui_files_count; i++)
    if (!strcmp(cs_ui_files[i].name, name))
      return &cs_ui_files[i];
  return NULL;
}

static enum cs_err serve(struct cs_resp *resp, const struct cs_ui_file *f, const char *cache)
{
  char *body = malloc(f->len);
  if (!body)
    return CS_ERR_NOMEM;
  memcpy(body, f->data, f->len);
  free(resp->body);
  resp->body = body;
  resp->len = f->len;
  resp->status = 200;
  resp->content_type = content_type(f->name);
  ui_headers(resp, cache);
  return CS_OK;
}

enum cs_err cs_h_ui_redirect(struct cs_req *req, struct cs_resp *resp)
{
  enum cs_err e = cs_resp_empty(resp, 302);
  if (!e) {
    cs_resp_header(resp, "Location", "/ui/");
    ui_headers(resp, "no-cache");
  }
  return e;
}

/* index.html names the assets of this build: revalidated on every load. */
enum cs_err cs_h_ui_index(struct cs_req *req, struct cs_resp *resp)
{
  const struct cs_ui_file *f = ui_find("index.html");
  return f ? serve(resp, f, "no-cache") : CS_ERR_INTERNAL;
}

/* An asset's URL changes with any file's content, so it is cached for good.
 * Another build's URL is a 404, not this build's file under an old name. */
enum cs_err cs_h_ui_asset(struct cs_req *req, struct cs_resp *resp)
{
  const char *build = req->params[0], *name = req->params[1];
  const struct cs_ui_file *f = ui_find(name);

  if (strcmp(build, cs_ui_build) != 0 || !f || !strcmp(name, "index.html"))
    return cs_fail(resp, CS_ERR_NOT_FOUND, "no such console file in this build");
  return serve(resp, f, "public, max-age=31536000, immutable");
}
