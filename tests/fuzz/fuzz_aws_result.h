/* The checks shared by fuzz_sts_xml and fuzz_imds_json: both parsers fill
 * the same credentials and error structs. */
#ifndef CS_FUZZ_AWS_RESULT_H
#define CS_FUZZ_AWS_RESULT_H

#include "aws_internal.h"

/**
 * Abort (for libFuzzer) unless @p e and the outputs keep the parsers'
 * promises: on success three printable, terminated tokens and a positive
 * expiration; on failure a terminated error with a code.
 */
void cs_fuzz_check_aws_result(const char *parser, enum cs_err e, const struct cs_aws_creds *out,
                              const struct cs_aws_error *err);

#endif
