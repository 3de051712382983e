/*
 * server/tls_ticket.c — session-ticket keys that rotate.
 *
 * A ticket is the session state encrypted (AES-256-CBC) and authenticated (HMAC-SHA256)
 * under a key only this process knows; a client that shows it back skips the full
 * handshake. The keys come from libsodium's randombytes, never leave memory, and rotate:
 * every TLS_TICKET_ROTATE_S the current key becomes the previous one and a new one is made.
 * New tickets are always under the current key; a ticket under the previous one is still
 * accepted (and the client gets a fresh one), so a ticket is good for one to two rotation
 * periods and a key that leaks cannot open sessions older than that.
 *
 * One pair of keys for the whole process, shared by every listener thread: OpenSSL calls
 * the callback from whichever loop thread runs the handshake, so the keys are read and
 * rotated under one mutex (held for a copy of 80 bytes, once per ticket made or read).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <sodium.h>
#include "common/now.h"
#include "server/tls_int.h"

#define TLS_TICKET_ROTATE_S 3600

typedef struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    int64_t made_ms; /* 0: none */
} ticket_key_t;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static ticket_key_t g_current, g_previous;

static void key_make(ticket_key_t *k, int64_t now)
{
    randombytes_buf(k->name, sizeof(k->name));
    randombytes_buf(k->aes, sizeof(k->aes));
    randombytes_buf(k->hmac, sizeof(k->hmac));
    k->made_ms = now;
}

/* a copy of the current key (rotated if due at `now`) or of the key named `name` (NULL: the
 * current one); 1 current, 2 previous, 0 none */
static int key_get_at(const unsigned char *name, int64_t now, ticket_key_t *out)
{
    int found = 0;
    pthread_mutex_lock(&g_lock);
    if (g_current.made_ms == 0 || now - g_current.made_ms >= (int64_t)TLS_TICKET_ROTATE_S * 1000) {
        g_previous = g_current;
        key_make(&g_current, now);
    }
    if (name == NULL || memcmp(name, g_current.name, sizeof(g_current.name)) == 0) {
        *out = g_current;
        found = 1;
    } else if (g_previous.made_ms != 0 && memcmp(name, g_previous.name, sizeof(g_previous.name)) == 0) {
        *out = g_previous;
        found = 2;
    }
    pthread_mutex_unlock(&g_lock);
    return found;
}

static int key_get(const unsigned char *name, ticket_key_t *out)
{
    return key_get_at(name, now_mono_ms(), out);
}

int tls_ticket_key_at(const unsigned char name[16], int64_t now_ms, unsigned char name_out[16])
{
    ticket_key_t k;
    int found = key_get_at(name, now_ms, &k);
    if (found != 0)
        memcpy(name_out, k.name, sizeof(k.name));
    sodium_memzero(&k, sizeof(k));
    return found;
}

/*
 * OpenSSL's ticket callback: 1 done, 2 accepted but renew the ticket, 0 unknown key (full
 * handshake), -1 error. A TLS 1.3 ticket is always renewed: OpenSSL sends a TLS 1.3 client
 * that resumed a new ticket only then, and clients that use each ticket once (as RFC 8446 C.4
 * asks; browsers do) had two resumptions from a full handshake, then a full one again. So
 * every resumption now hands the client its next ticket (nginx does the same).
 */
static int on_ticket_key(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX *cctx,
                         EVP_MAC_CTX *hctx, int enc)
{
    ticket_key_t k;
    int rc;
    if (enc) {
        key_get(NULL, &k);
        memcpy(key_name, k.name, sizeof(k.name));
        randombytes_buf(iv, (size_t)EVP_CIPHER_get_iv_length(EVP_aes_256_cbc()));
        rc = 1;
    } else if ((rc = key_get(key_name, &k)) == 0) {
        return 0;
    } else if (SSL_version(ssl) == TLS1_3_VERSION) {
        rc = 2;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_MAC_CTX_set_params(hctx, params) == 1 &&
             (enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv)
                  : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv)) == 1;
    sodium_memzero(&k, sizeof(k));
    return ok ? rc : -1;
}

void tls_ticket_install(SSL_CTX *ctx)
{
    if (sodium_init() < 0) /* idempotent; randombytes works without it, but it picks the best source */
        fprintf(stderr, "edgecache: libsodium failed to initialise; ticket keys come from its fallback\n");
    SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
}

void tls_ticket_shutdown(void)
{
    pthread_mutex_lock(&g_lock);
    sodium_memzero(&g_current, sizeof(g_current));
    sodium_memzero(&g_previous, sizeof(g_previous));
    pthread_mutex_unlock(&g_lock);
}
