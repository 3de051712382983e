/*
 * server/tls.h — TLS at the edge: the certificates of the proxy's HTTPS listeners
 * (--tls-cert, chosen by SNI) and of the admin API's (--admin-tls-cert), their reload on
 * SIGHUP, session tickets (server/tls_ticket.c) and OCSP stapling (server/tls_ocsp.c).
 *
 * The listeners hand h2o a "front" SSL_CTX that never changes; its SNI callback moves each
 * connection onto the SSL_CTX of the certificate it asked for, read from the current
 * certificate set under a read lock. A reload builds a new set and swaps it in.
 */
#ifndef EDGECACHE_TLS_H
#define EDGECACHE_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>
#include "server/config.h"

/**
 * Read and check every certificate of cfg (tls_certs when TLS listeners are configured,
 * admin_tls_cert when the admin TLS listener is) and build their contexts; starts the OCSP
 * thread when a certificate names a responder. Borrows cfg until tls_shutdown (a reload
 * reads the same paths again). Main thread, before any listener opens. Returns 0 (also when
 * nothing is configured), or -1 with one line naming the setting in err ("--tls-cert
 * a.test=...: ...: key does not match the certificate").
 */
int tls_init(const config_t *cfg, char *err, size_t errlen);

/** The SSL_CTX for the proxy's TLS listeners' h2o_accept_ctx_t (borrowed until tls_shutdown); NULL without TLS. */
SSL_CTX *tls_proxy_ssl_ctx(void);

/** The SSL_CTX for the admin TLS listener (borrowed until tls_shutdown); NULL without one. */
SSL_CTX *tls_admin_ssl_ctx(void);

/**
 * Read every certificate file again and, when all of them are good, make the new ones serve
 * new handshakes (connections already open keep theirs). Any bad file: nothing changes, -1
 * with the reason in err. Returns the number of certificates loaded in *count. Main thread
 * (the SIGHUP handler), never a loop thread: it reads files.
 */
int tls_reload(size_t *count, char *err, size_t errlen);

/** Stop the OCSP thread and free every context. After every listener thread has stopped. */
void tls_shutdown(void);

/**
 * The proxy's certificate set as an SNI callback sees it: the index in cfg->tls_certs of
 * the certificate that answers `name` (NULL: no SNI) — an exact name, else "*.parent", else
 * the default (one named "default" or "*", else the first). Pure; for tests.
 */
size_t tls_pick_cert(const config_tls_cert_t *certs, size_t n, const char *name);

#endif
