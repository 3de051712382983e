/*
 * cluster/cluster_auth.c — how a node proves itself to NATS and checks that it talks to NATS:
 * a user and password or a token in the URLs (cnats reads them from there), a .creds file
 * (user JWT and NKey seed), an NKey seed file, and TLS with a CA, an optional client
 * certificate and an optional expected host name.
 *
 * The files are read once here, at start, so that a missing or malformed one is one line and
 * exit status 2 before anything listens; cnats reads the .creds and seed files again at each
 * connection (and wipes the seed from memory after signing). An NKey seed file names only the
 * seed: its public key, which cnats wants beside it, is derived here (Ed25519, libsodium).
 * Nothing here prints a URL, a password, a token or a seed.
 *
 * Main thread, from cluster_start, before any cluster thread exists.
 */
#include "cluster/cluster_int.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/errbuf.h"

#define FILE_CAP (64 * 1024) /* a .creds or seed file is a few hundred bytes */
#define SEED_CHARS 58        /* base32 of 2 prefix bytes, a 32-byte seed and a CRC16 */
#define PUBKEY_CHARS 56      /* base32 of 1 prefix byte, a 32-byte key and a CRC16 */
#define NKEY_PREFIX_SEED (18 << 3)
#define NKEY_PREFIX_USER (20 << 3)

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* The whole file into a new NUL-terminated buffer (the caller wipes and frees it); NULL when unreadable or too big. */
static char *read_small_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(FILE_CAP + 1);
    size_t n = buf != NULL ? fread(buf, 1, FILE_CAP + 1, f) : 0;
    int bad = buf == NULL || ferror(f) || n > FILE_CAP;
    fclose(f);
    if (bad) {
        if (buf != NULL)
            sodium_memzero(buf, FILE_CAP + 1);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* the XMODEM CRC16 that NKeys append */
static uint16_t crc16(const unsigned char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

/* base32 (no padding) of n chars into out; the number of bytes, or -1 on a stray char */
static int b32_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = strchr(b32, s[i]);
        if (s[i] == '\0' || c == NULL)
            return -1;
        acc = (acc << 5) | (uint32_t)(c - b32);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (int)o;
}

static void b32_encode(const unsigned char *p, size_t n, char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = b32[(acc >> bits) & 31];
        }
    }
    if (bits > 0)
        out[o++] = b32[(acc << (5 - bits)) & 31];
    out[o] = '\0';
}

/* The user public key of the first user seed ("SU" + 56 base32 chars) in text; 0 or -1. */
static int nkey_public_from_seed_text(const char *text, char pub[PUBKEY_CHARS + 1])
{
    const char *s = text;
    while ((s = strstr(s, "SU")) != NULL) {
        size_t n = strspn(s, b32);
        if (n == SEED_CHARS)
            break;
        s += n > 0 ? n : 1;
    }
    if (s == NULL)
        return -1;
    unsigned char raw[40], pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES], out[35];
    int rc = -1;
    if (b32_decode(s, SEED_CHARS, raw, sizeof(raw)) != 36)
        goto done;
    if ((raw[0] & 0xf8) != NKEY_PREFIX_SEED || (unsigned)(((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3)) != NKEY_PREFIX_USER)
        goto done;
    if (crc16(raw, 34) != (uint16_t)(raw[34] | (raw[35] << 8)))
        goto done;
    if (crypto_sign_seed_keypair(pk, sk, raw + 2) != 0)
        goto done;
    out[0] = NKEY_PREFIX_USER;
    memcpy(out + 1, pk, 32);
    uint16_t crc = crc16(out, 33);
    out[33] = (unsigned char)crc;
    out[34] = (unsigned char)(crc >> 8);
    b32_encode(out, 35, pub);
    rc = 0;
done:
    sodium_memzero(raw, sizeof(raw));
    sodium_memzero(sk, sizeof(sk));
    return rc;
}

/* "why" of the last cnats error (never a secret: file names and OpenSSL's reasons) */
static const char *last_error(natsStatus s)
{
    natsStatus ls;
    const char *text = nats_GetLastError(&ls);
    return text != NULL && text[0] != '\0' ? text : natsStatus_GetText(s);
}

int cluster_auth_setup(natsOptions *opts, const cluster_options_t *opt, char *err, size_t errlen)
{
    natsStatus s;
    if (sodium_init() < 0) {
        errbuf_printf(err, errlen, "--cluster: libsodium cannot start");
        return -1;
    }
    if (opt->creds != NULL && opt->creds[0] != '\0') {
        size_t len = 0;
        char *text = read_small_file(opt->creds, &len);
        int ok = text != NULL && strstr(text, "-----BEGIN NATS USER JWT-----") != NULL && strstr(text, "SU") != NULL;
        if (text != NULL) {
            sodium_memzero(text, len);
            free(text);
        }
        if (!ok) {
            errbuf_printf(err, errlen, "--cluster-creds: cannot read a NATS credentials file (user JWT and seed) from %s",
                          opt->creds);
            return -1;
        }
        if ((s = natsOptions_SetUserCredentialsFromFiles(opts, opt->creds, NULL)) != NATS_OK) {
            errbuf_printf(err, errlen, "--cluster-creds: %s", last_error(s));
            return -1;
        }
    }
    if (opt->nkey_seed != NULL && opt->nkey_seed[0] != '\0') {
        size_t len = 0;
        char pub[PUBKEY_CHARS + 1];
        char *text = read_small_file(opt->nkey_seed, &len);
        int rc = text != NULL ? nkey_public_from_seed_text(text, pub) : -1;
        if (text != NULL) {
            sodium_memzero(text, len);
            free(text);
        }
        if (rc != 0) {
            errbuf_printf(err, errlen, "--cluster-nkey: %s holds no valid user NKey seed (SU...)", opt->nkey_seed);
            return -1;
        }
        if ((s = natsOptions_SetNKeyFromSeed(opts, pub, opt->nkey_seed)) != NATS_OK) {
            errbuf_printf(err, errlen, "--cluster-nkey: %s", last_error(s));
            return -1;
        }
    }
    if (opt->tls_ca != NULL && opt->tls_ca[0] != '\0') {
        if ((s = natsOptions_SetSecure(opts, true)) != NATS_OK ||
            (s = natsOptions_LoadCATrustedCertificates(opts, opt->tls_ca)) != NATS_OK) {
            errbuf_printf(err, errlen, "--cluster-tls-ca: cannot load %s: %s", opt->tls_ca, last_error(s));
            return -1;
        }
        if (opt->tls_cert != NULL && opt->tls_cert[0] != '\0' &&
            (s = natsOptions_LoadCertificatesChain(opts, opt->tls_cert, opt->tls_key)) != NATS_OK) {
            errbuf_printf(err, errlen, "--cluster-tls-cert: cannot load %s and %s: %s", opt->tls_cert, opt->tls_key,
                          last_error(s));
            return -1;
        }
        if (opt->tls_hostname != NULL && opt->tls_hostname[0] != '\0' &&
            (s = natsOptions_SetExpectedHostname(opts, opt->tls_hostname)) != NATS_OK) {
            errbuf_printf(err, errlen, "--cluster-tls-hostname: %s", last_error(s));
            return -1;
        }
    }
    return 0;
}
