/*
 * server/tls_int.h — what server/tls.c shares with its helpers: session-ticket keys
 * (server/tls_ticket.c) and OCSP stapling (server/tls_ocsp.c). Internal to server/.
 */
#ifndef EDGECACHE_TLS_INT_H
#define EDGECACHE_TLS_INT_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

/**
 * Make `ctx` (a front context: the one h2o's SSL objects are created from, so the session
 * context OpenSSL asks for tickets) issue and accept session tickets under the process's
 * rotating keys. The keys are made on first use and shared by every context and thread.
 */
void tls_ticket_install(SSL_CTX *ctx);

/**
 * The rotation as OpenSSL's callback sees it at monotonic time now_ms (for tests): with name
 * NULL, the key new tickets get (rotated first when it is TLS_TICKET_ROTATE_S old); else the
 * key that name names. Returns 1 (the current key), 2 (the previous one: accepted, the
 * ticket is renewed) or 0 (unknown: a full handshake), with the key's name in name_out.
 */
int tls_ticket_key_at(const unsigned char name[16], int64_t now_ms, unsigned char name_out[16]);

/** Free the ticket keys (tls_shutdown, after every handshake is over). */
void tls_ticket_shutdown(void);

/**
 * Staple OCSP responses on handshakes of `ctx` when `leaf` names an OCSP responder
 * (authorityInfoAccess) and its issuer is in the chain loaded into ctx; a no-op otherwise.
 * The response is fetched by the OCSP thread (tls_ocsp_start) and refreshed before its
 * nextUpdate. The state lives as long as ctx (freed with it). 0, or -1 (out of memory).
 */
int tls_ocsp_attach(SSL_CTX *ctx);

/** Start the OCSP thread if any context has a responder. Main thread. 0 or -1 with err. */
int tls_ocsp_start(char *err, size_t errlen);

/** Stop and join the OCSP thread. */
void tls_ocsp_stop(void);

#endif
