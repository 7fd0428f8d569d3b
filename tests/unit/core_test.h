/*
 * Shared by the core unit tests (test_core.c, test_codecs.c): a fresh LMDB
 * store in a temporary directory per case, a keyring under a new master
 * key, the core over them (no writer: changes commit on the calling
 * thread) and the bootstrap admin as the acting principal.
 */
#ifndef CS_CORE_TEST_H
#define CS_CORE_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core_internal.h"

#define _XOPEN_SOURCE_EXTENDED 1
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

struct fx {
  char dir[64];
  struct cs_store *st;
  struct cs_keyring *kr;
  struct cs_core core;
  struct cs_new_key admin;
  struct cs_principal who; /* the bootstrap admin */
  struct cs_actor actor;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof *f);
  struct cs_master_key *mk = NULL;
  char path[128];

  assert_non_null(f);
  snprintf(f->dir, sizeof f->dir, "/tmp/cs-core-test.XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(path, sizeof path, "%s/master.key", f->dir);
  assert_int_equal(cs_master_key_generate_file(path), CS_OK);
  assert_int_equal(cs_master_key_from_file(path, &mk), CS_OK);
  assert_int_equal(cs_keyring_create(mk, &f->kr), CS_OK);
  cs_master_key_free(mk);
  snprintf(path, sizeof path, "%s/data", f->dir);
  assert_int_equal(cs_store_open(path, CS_STORE_CREATE, &f->st), CS_OK);
  assert_int_equal(cs_meta_init(f->st, f->kr, NULL, &f->admin), CS_OK);
  cs_core_init(&f->core, f->st, f->kr, NULL);
  assert_int_equal(cs_keys_check_secret(&f->core, f->admin.id, f->admin.secret, &f->who), CS_OK);
  f->actor = (struct cs_actor){f->who.key_id, "admin", "127.0.0.1"};
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  cs_core_stop(&f->core);
  cs_principal_clear(&f->who);
  cs_store_close(f->st);
  cs_keyring_free(f->kr);
  nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

#endif
