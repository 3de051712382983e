/*
 * common/skey.h — the surrogate-key tokenizer.
 */
#ifndef COMMON_SKEY_H
#define COMMON_SKEY_H

#include <stddef.h>

/** The next surrogate key of the space- or tab-separated list skeys[0..len) from *pos on, its
 *  length in *tok_len; NULL (and *tok_len 0) at the end of the list. A token longer than
 *  max_tok, or one ending past max_list, ends the list there (*pos = len): the indexing rules
 *  of storage/object.c. SIZE_MAX for both returns every token, whatever its length or place. */
const char *skey_next(const char *skeys, size_t len, size_t *pos, size_t *tok_len, size_t max_tok, size_t max_list);

#endif
