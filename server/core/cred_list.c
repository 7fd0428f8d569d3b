/* Listing credentials (API.md §3): one page in one read snapshot, the
 * common case (by id, no filter) without decoding what it skips. */
#include "core_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct list_item {
  const char *id; /* borrowed from the snapshot */
  size_t id_len;
  struct cs_cred_view c;
};

static int cmp_items(const void *a, const void *b, void *arg)
{
  const struct list_item *x = a, *y = b;
  enum cs_cred_sort sort = *(const enum cs_cred_sort *)arg;
  int r = 0;

  switch (sort) {
  case CS_SORT_TYPE:
    r = strcmp(x->c.prov->type, y->c.prov->type);
    break;
  case CS_SORT_CREATED:
    r = (x->c.created > y->c.created) - (x->c.created < y->c.created);
    break;
  case CS_SORT_MODIFIED:
    r = (x->c.modified > y->c.modified) - (x->c.modified < y->c.modified);
    break;
  case CS_SORT_ID:
    break;
  }
  if (r == 0) {
    size_t n = x->id_len < y->id_len ? x->id_len : y->id_len;
    r = memcmp(x->id, y->id, n);
    if (r == 0)
      r = (x->id_len > y->id_len) - (x->id_len < y->id_len);
  }
  return r;
}

/* Does the record match the query's type, search and scope? */
static bool matches(const struct cs_cred_query *q, const char *id, const struct cs_cred_view *c)
{
  if (q->type && c->prov != q->type)
    return false;
  if (q->scope && !cs_scope_allows(q->scope, id))
    return false;
  if (!q->search || !q->search[0])
    return true;
  if (strcasestr(id, q->search))
    return true;
  /* description and accountID live in the meta JSON. */
  cJSON *meta = NULL;
  bool hit = false;
  if (cs_json_parse(c->meta, c->meta_len, CS_JSON_MAX_DEPTH, &meta))
    return false;
  const char *fields[] = {"description", "accountID", "accountGUID"};
  for (size_t i = 0; i < 3 && !hit; i++) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(meta, fields[i]);
    hit = cJSON_IsString(f) && strcasestr(f->valuestring, q->search);
  }
  cJSON_Delete(meta);
  return hit;
}

/* The page being rendered: a JSON array's text and how many it holds. */
struct page {
  struct cs_buf b;
  uint64_t n;
  bool prisma;
};

#define PAGE_MAX (1u << 30) /* bytes; an unpaged Prisma list holds every credential */

/* Keys are NUL-free ids without terminator: copy one for rendering. */
static enum cs_err render_into(struct page *pg, const struct list_item *it)
{
  char id[CS_NAME_MAX + 1];
  struct cs_cred_view c = it->c;
  enum cs_err e;
  if (it->id_len > CS_NAME_MAX)
    return CS_ERR_STORE;
  memcpy(id, it->id, it->id_len);
  id[it->id_len] = '\0';
  c.id = id;
  if (pg->n && (e = cs_buf_append(&pg->b, ",", 1)))
    return e;
  if ((e = cs_cred_render_text(&c, pg->prisma, &pg->b)))
    return e;
  pg->n++;
  return CS_OK;
}

/* The common case, ordered by id with no filter: walk the key order and
 * count from the table's size, so a page costs the same at any store size. */
static enum cs_err list_by_id(struct cs_txn *txn, const struct cs_cred_query *q, struct page *page,
                              uint64_t *total)
{
  struct cs_cursor *cur = NULL;
  struct cs_val k, v;
  uint64_t skipped = 0;
  enum cs_err e;

  if ((e = cs_txn_count(txn, CS_TBL_CREDS, total)) || (e = cs_cursor_open(txn, CS_TBL_CREDS, &cur)))
    return e;
  e = q->reverse ? cs_cursor_last(cur, &k, &v) : cs_cursor_seek(cur, NULL, 0, &k, &v);
  for (; e == CS_OK; e = q->reverse ? cs_cursor_prev(cur, &k, &v) : cs_cursor_next(cur, &k, &v)) {
    if (skipped < q->offset) {
      skipped++;
      continue;
    }
    if (page->n >= q->limit)
      break;
    struct list_item it = {.id = k.data, .id_len = k.len};
    if ((e = cs_cred_decode("", &v, &it.c)) || (e = render_into(page, &it)))
      break;
  }
  cs_cursor_close(cur);
  return e == CS_ERR_NOT_FOUND ? CS_OK : e;
}

/* The items of a filtered list, grown as they come. */
struct item_vec {
  struct list_item *v;
  size_t n, cap;
};

static enum cs_err vec_push(struct item_vec *iv, const struct list_item *it)
{
  if (iv->n == iv->cap) {
    size_t ncap = iv->cap ? iv->cap * 2 : 256;
    struct list_item *p = realloc(iv->v, ncap * sizeof *p);
    if (!p)
      return CS_ERR_NOMEM;
    iv->v = p;
    iv->cap = ncap;
  }
  iv->v[iv->n++] = *it;
  return CS_OK;
}

/* Every record of the table that the query admits. */
static enum cs_err collect_scan(struct cs_txn *txn, const struct cs_cred_query *q,
                                struct item_vec *iv)
{
  struct cs_cursor *cur = NULL;
  struct cs_val k, v;
  enum cs_err e;

  if ((e = cs_cursor_open(txn, CS_TBL_CREDS, &cur)))
    return e;
  for (e = cs_cursor_seek(cur, NULL, 0, &k, &v); e == CS_OK; e = cs_cursor_next(cur, &k, &v)) {
    char id[CS_NAME_MAX + 1];
    struct list_item it = {.id = k.data, .id_len = k.len};
    if (k.len > CS_NAME_MAX || (e = cs_cred_decode("", &v, &it.c)))
      break;
    memcpy(id, k.data, k.len);
    id[k.len] = '\0';
    if (matches(q, id, &it.c) && (e = vec_push(iv, &it)))
      break;
  }
  cs_cursor_close(cur);
  return e == CS_ERR_NOT_FOUND ? CS_OK : e;
}

/* ?ids=: look each name up instead of scanning; a name given twice counts once. */
static enum cs_err collect_ids(struct cs_txn *txn, const struct cs_cred_query *q,
                               struct item_vec *iv)
{
  const cJSON *a, *b;
  enum cs_err e = CS_OK;

  cJSON_ArrayForEach(a, q->ids)
  {
    bool dup = false;
    for (b = q->ids->child; b != a && !dup; b = b->next)
      dup = strcmp(b->valuestring, a->valuestring) == 0;
    struct list_item it = {.id = a->valuestring, .id_len = strlen(a->valuestring)};
    if (dup)
      continue;
    e = cs_cred_load(txn, a->valuestring, &it.c);
    if (e == CS_ERR_NOT_FOUND)
      continue;
    if (e || (matches(q, a->valuestring, &it.c) && (e = vec_push(iv, &it))))
      break;
  }
  return e == CS_ERR_NOT_FOUND ? CS_OK : e;
}

static enum cs_err list_filtered(struct cs_txn *txn, const struct cs_cred_query *q,
                                 struct page *page, uint64_t *total)
{
  struct item_vec iv = {0};
  enum cs_err e = q->ids ? collect_ids(txn, q, &iv) : collect_scan(txn, q, &iv);
  struct list_item *items = iv.v;
  size_t n = iv.n;

  if (!e) {
    enum cs_cred_sort sort = q->sort;
    if (n > 1)
      qsort_r(items, n, sizeof *items, cmp_items, &sort);
    *total = n;
    for (uint64_t i = q->offset; i < n && page->n < q->limit && !e; i++)
      e = render_into(page, &items[q->reverse ? n - 1 - i : i]);
  }
  free(items);
  return e;
}

enum cs_err cs_creds_list(struct cs_core *c, const struct cs_cred_query *q, char **page,
                          size_t *len, uint64_t *total)
{
  struct cs_txn *txn;
  struct page pg = {.prisma = q->prisma};
  uint64_t n = 0;
  enum cs_err e;

  cs_buf_init(&pg.b, PAGE_MAX);
  if ((e = cs_buf_append(&pg.b, "[", 1)) || (e = cs_store_read_begin(c->store, &txn))) {
    cs_buf_free(&pg.b);
    return e;
  }
  if (q->sort == CS_SORT_ID && !q->type && !q->scope && !q->ids && !(q->search && q->search[0]))
    e = list_by_id(txn, q, &pg, &n);
  else
    e = list_filtered(txn, q, &pg, &n);
  cs_store_read_end(txn);
  if (e || (e = cs_buf_append(&pg.b, "]", 1))) {
    cs_buf_free(&pg.b);
    return e;
  }
  *page = pg.b.data;
  *len = pg.b.len;
  *total = n;
  return CS_OK;
}
