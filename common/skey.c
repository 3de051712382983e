/*
 * common/skey.c — splitting a Surrogate-Key list into its keys.
 *
 * Keys are separated by spaces and tabs. The caller says how long a key and how long the
 * list may be: the object record indexes only keys within its limits, while removing index
 * entries walks every token (records older versions indexed by other rules). Pure; any thread.
 */
#include "common/skey.h"

const char *skey_next(const char *skeys, size_t len, size_t *pos, size_t *tok_len, size_t max_tok, size_t max_list)
{
    size_t i = *pos;
    while (i < len && (skeys[i] == ' ' || skeys[i] == '\t'))
        i++;
    size_t start = i;
    while (i < len && skeys[i] != ' ' && skeys[i] != '\t')
        i++;
    *tok_len = 0;
    if (i == start || i - start > max_tok || i > max_list) {
        *pos = len; /* the list ends here, whatever follows */
        return NULL;
    }
    *pos = i;
    *tok_len = i - start;
    return skeys + start;
}
