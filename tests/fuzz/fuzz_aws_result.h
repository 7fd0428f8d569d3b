/* The checks shared by fuzz_sts_xml and fuzz_imds_json: both parsers fill
 * the same credentials and error structs; fuzz_token_json shares the error
 * check. */
#ifndef CS_FUZZ_AWS_RESULT_H
#define CS_FUZZ_AWS_RESULT_H

#include "aws_internal.h"

/**
 * Abort (for libFuzzer) unless @p e and the outputs keep the parsers'
 * promises: on success three printable, terminated tokens and a positive
 * expiration; on failure a terminated error with a code.
 */
void cs_fuzz_check_aws_result(const char *parser, enum cs_err e, const struct cs_aws_creds *out,
                              const struct cs_net_error *err);

/** Abort unless @p err is terminated and carries a code. */
void cs_fuzz_check_net_error(const char *parser, const struct cs_net_error *err);

/** Abort unless @p s is a non-empty, terminated, printable token. */
void cs_fuzz_check_token(const char *what, const char *s, size_t cap);

#endif
