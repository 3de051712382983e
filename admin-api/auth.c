/*
 * admin-api/auth.c — API tokens and who may do what.
 *
 * A token is 32 random bytes (libsodium randombytes_buf) shown once to its creator as
 * base64url. Only BLAKE2b-256 of the token string is kept: the `tokens` database maps the
 * hex hash to a JSON record {id, name, scopes, created}. Authentication hashes what the
 * request presents and reads that one key from LMDB, on every request: LMDB is
 * multi-process, so a token created or revoked by `edgecache token ...` in another process
 * is seen by the very next request; there is no cache to go stale. The lookup is by hash,
 * so its timing depends only on the hash of the presented bytes, never on a stored secret;
 * comparisons of secrets we do make (the id of a token) go through sodium_memcmp.
 *
 * Failure budget: every bad token (presented but unknown) is counted per peer address in
 * a small fixed table (ADMIN_BUDGET_SLOTS, oldest entry recycled, so memory is bounded no
 * matter how many addresses attack). Past ADMIN_BUDGET_FAILURES in a window the 401 is
 * sent only after a delay, via a timer on the request's own event loop: the loop never
 * blocks, and a valid token never consults the table, so it is never slowed or refused.
 *
 * Threads: everything here may run on the admin thread or on any proxy worker thread
 * (admin_authorize_proxy_purge_or_respond). The budget table has its own mutex, held only
 * for the table update; store reads use the store's per-thread read transactions.
 */
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sodium.h>
#include "admin-api/admin_int.h"
#include "server/text.h"

static const struct {
    const char *name;
    unsigned bit;
} scope_names[] = {
    {"purge_select", ADMIN_SCOPE_PURGE_SELECT},
    {"purge_all", ADMIN_SCOPE_PURGE_ALL},
    {"global:read", ADMIN_SCOPE_GLOBAL_READ},
    {"global", ADMIN_SCOPE_GLOBAL},
};
#define NUM_SCOPES (sizeof(scope_names) / sizeof(scope_names[0]))

static int scope_lookup(const char *s, size_t len, unsigned *bit)
{
    for (size_t i = 0; i < NUM_SCOPES; i++) {
        if (strlen(scope_names[i].name) == len && memcmp(scope_names[i].name, s, len) == 0) {
            *bit = scope_names[i].bit;
            return 0;
        }
    }
    return -1;
}

int admin_scopes_parse(const char *s, size_t len, unsigned *mask, char *err, size_t errlen)
{
    unsigned found = 0;
    size_t i = 0;
    int any = 0;

    while (i < len) {
        while (i < len && (s[i] == ',' || s[i] == ' ' || s[i] == '\t'))
            i++;
        size_t start = i;
        while (i < len && !(s[i] == ',' || s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == start)
            break;
        unsigned bit;
        if (scope_lookup(s + start, i - start, &bit) != 0) {
            char shown[72]; /* a bounded prefix of the untrusted name, cut between characters */
            snprintf(err, errlen, "unknown scope '%s' (use purge_select, purge_all, global, global:read)",
                     text_escape(shown, sizeof(shown), s + start, i - start));
            return ADMIN_EINVAL;
        }
        found |= bit;
        any = 1;
    }
    if (!any) {
        snprintf(err, errlen, "no scope given (use purge_select, purge_all, global, global:read)");
        return ADMIN_EINVAL;
    }
    *mask |= found;
    return 0;
}

json_t *admin_scopes_to_json(unsigned mask)
{
    json_t *arr = json_array();
    if (arr == NULL)
        abort();
    for (size_t i = 0; i < NUM_SCOPES; i++)
        if (mask & scope_names[i].bit)
            json_array_append_new(arr, json_string(scope_names[i].name));
    return arr;
}

int admin_scopes_from_json(const json_t *arr, unsigned *mask)
{
    size_t i;
    const json_t *v;
    unsigned m = 0;

    if (!json_is_array(arr))
        return ADMIN_EINVAL;
    json_array_foreach (arr, i, v) {
        unsigned bit;
        if (!json_is_string(v))
            return ADMIN_EINVAL;
        if (scope_lookup(json_string_value(v), json_string_length(v), &bit) == 0)
            m |= bit;
    }
    *mask = m;
    return 0;
}

void admin_token_hash_hex(const char *token, size_t len, char hex[ADMIN_TOKEN_HASH_HEX])
{
    uint8_t h[ADMIN_TOKEN_HASH_LEN];
    crypto_generichash(h, sizeof(h), (const unsigned char *)token, len, NULL, 0);
    sodium_bin2hex(hex, ADMIN_TOKEN_HASH_HEX, h, sizeof(h));
    sodium_memzero(h, sizeof(h));
}

void admin_token_generate(char token[ADMIN_TOKEN_STR_CAP], char id[ADMIN_TOKEN_ID_HEX])
{
    uint8_t raw[ADMIN_TOKEN_RAW_LEN], rid[(ADMIN_TOKEN_ID_HEX - 1) / 2];

    if (sodium_init() < 0) {
        fprintf(stderr, "fatal: libsodium failed to initialise\n");
        abort();
    }
    /* never begin with '-': command-line tools would read `--token -x...` as a missing value */
    do {
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(token, ADMIN_TOKEN_STR_CAP, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    } while (token[0] == '-');
    randombytes_buf(rid, sizeof(rid));
    sodium_bin2hex(id, ADMIN_TOKEN_ID_HEX, rid, sizeof(rid));
    sodium_memzero(raw, sizeof(raw));
}

int admin_token_name_validate(const char *name, size_t len)
{
    if (len == 0 || len > ADMIN_MAX_NAME_LEN)
        return ADMIN_EINVAL;
    if (name[0] == ' ' || name[len - 1] == ' ')
        return ADMIN_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c > 0x7e)
            return ADMIN_EINVAL;
    }
    return 0;
}

char *admin_token_rec_dump(const admin_token_rec_t *rec)
{
    json_t *o = json_pack("{s:s, s:s, s:o, s:I}", "id", rec->id, "name", rec->name, "scopes",
                          admin_scopes_to_json(rec->scopes), "created", (json_int_t)rec->created);
    if (o == NULL)
        abort();
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        abort();
    return s;
}

int admin_token_rec_parse(const char *json, size_t len, admin_token_rec_t *rec)
{
    json_error_t jerr;
    json_t *o = json_loadb(json, len, 0, &jerr), *id, *name, *scopes, *created;
    int ret = ADMIN_EINVAL;

    if (o == NULL || !json_is_object(o))
        goto fail;
    id = json_object_get(o, "id");
    name = json_object_get(o, "name");
    scopes = json_object_get(o, "scopes");
    created = json_object_get(o, "created");
    if (!json_is_string(id) || json_string_length(id) != ADMIN_TOKEN_ID_HEX - 1)
        goto fail;
    if (!json_is_string(name) || json_string_length(name) > ADMIN_MAX_NAME_LEN)
        goto fail;
    if (!json_is_integer(created))
        goto fail;
    memset(rec, 0, sizeof(*rec));
    if (admin_scopes_from_json(scopes, &rec->scopes) != 0)
        goto fail;
    memcpy(rec->id, json_string_value(id), ADMIN_TOKEN_ID_HEX);
    memcpy(rec->name, json_string_value(name), json_string_length(name) + 1);
    rec->created = json_integer_value(created);
    ret = 0;
fail:
    json_decref(o);
    return ret;
}

json_t *admin_token_rec_to_json(const admin_token_rec_t *rec)
{
    char when[32] = "";
    time_t t = (time_t)rec->created;
    struct tm tm;
    if (gmtime_r(&t, &tm) != NULL)
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *o = json_pack("{s:s, s:s, s:o, s:s}", "id", rec->id, "name", rec->name, "scopes",
                          admin_scopes_to_json(rec->scopes), "created_at", when);
    if (o == NULL)
        abort();
    return o;
}

/*
 * Records this thread parsed lately, keyed by their stored bytes. Every lookup still
 * reads the record from the store (a token created or revoked by another process counts
 * at once); only the JSON parse, which was most of a purge's jansson time, is skipped
 * when the bytes are the ones parsed before. A record is a function of its bytes, so a
 * hit can never give another token's scopes.
 */
#define TOKEN_CACHE_SLOTS 8
#define TOKEN_CACHE_REC_MAX 512
typedef struct token_cache_slot {
    size_t len; /* 0: empty */
    char raw[TOKEN_CACHE_REC_MAX];
    admin_token_rec_t rec;
} token_cache_slot_t;
static __thread token_cache_slot_t token_cache[TOKEN_CACHE_SLOTS];
static __thread unsigned token_cache_next;

static int token_rec_parse_cached(const char *val, size_t len, admin_token_rec_t *rec)
{
    for (size_t i = 0; i < TOKEN_CACHE_SLOTS; i++) {
        token_cache_slot_t *slot = &token_cache[i];
        if (slot->len == len && memcmp(slot->raw, val, len) == 0) {
            *rec = slot->rec;
            return 0;
        }
    }
    int ret = admin_token_rec_parse(val, len, rec);
    if (ret == 0 && len > 0 && len <= TOKEN_CACHE_REC_MAX) {
        token_cache_slot_t *slot = &token_cache[token_cache_next++ % TOKEN_CACHE_SLOTS];
        memcpy(slot->raw, val, len);
        slot->len = len;
        slot->rec = *rec;
    }
    return ret;
}

int admin_token_lookup(store_t *store, const char *token, size_t len, admin_token_rec_t *rec)
{
    char hex[ADMIN_TOKEN_HASH_HEX];
    char *val = NULL;
    size_t val_len = 0;
    int ret;

    if (len == 0 || len > ADMIN_MAX_TOKEN_LEN)
        return ADMIN_EINVAL;
    admin_token_hash_hex(token, len, hex);
    if ((ret = store_kv_get(store, "tokens", hex, &val, &val_len)) != 0)
        return ADMIN_ENOTFOUND;
    ret = token_rec_parse_cached(val, val_len, rec);
    if (ret != 0)
        fprintf(stderr, "edgecache: admin: token record %.12s... is corrupt; refusing it\n", hex);
    free(val);
    return ret;
}

static int stop_at_first(void *arg, const char *key, size_t key_len, const void *val, size_t val_len)
{
    (void)key, (void)key_len, (void)val, (void)val_len;
    *(int *)arg = 1;
    return 1;
}

int admin_tokens_exist(store_t *store)
{
    int any = 0;
    store_kv_foreach(store, "tokens", stop_at_first, &any);
    return any;
}

typedef struct find_ctx {
    const char *want;
    size_t want_len;
    int by_id_only;
    int id_hits, name_hits;
    char id_hash[ADMIN_TOKEN_HASH_HEX], name_hash[ADMIN_TOKEN_HASH_HEX];
    admin_token_rec_t id_rec, name_rec;
} find_ctx_t;

static int find_one(void *arg, const char *key, size_t key_len, const void *val, size_t val_len)
{
    find_ctx_t *f = arg;
    admin_token_rec_t rec;

    if (key_len != ADMIN_TOKEN_HASH_HEX - 1 || admin_token_rec_parse(val, val_len, &rec) != 0)
        return 0; /* not ours or corrupt: skip it */
    if (f->want_len == ADMIN_TOKEN_ID_HEX - 1 && sodium_memcmp(rec.id, f->want, f->want_len) == 0) {
        f->id_hits++;
        memcpy(f->id_hash, key, key_len);
        f->id_hash[key_len] = '\0';
        f->id_rec = rec;
    } else if (!f->by_id_only && strlen(rec.name) == f->want_len && memcmp(rec.name, f->want, f->want_len) == 0) {
        f->name_hits++;
        memcpy(f->name_hash, key, key_len);
        f->name_hash[key_len] = '\0';
        f->name_rec = rec;
    }
    return 0;
}

int admin_token_find(store_t *store, const char *id_or_name, char hash_hex[ADMIN_TOKEN_HASH_HEX], admin_token_rec_t *rec,
                     int by_id_only)
{
    find_ctx_t f;
    memset(&f, 0, sizeof(f));
    f.want = id_or_name;
    f.want_len = strlen(id_or_name);
    f.by_id_only = by_id_only;
    store_kv_foreach(store, "tokens", find_one, &f);
    if (f.id_hits == 1) {
        memcpy(hash_hex, f.id_hash, ADMIN_TOKEN_HASH_HEX);
        *rec = f.id_rec;
        return 0;
    }
    if (f.name_hits > 1)
        return ADMIN_EAMBIGUOUS;
    if (f.name_hits == 1) {
        memcpy(hash_hex, f.name_hash, ADMIN_TOKEN_HASH_HEX);
        *rec = f.name_rec;
        return 0;
    }
    return ADMIN_ENOTFOUND;
}

const h2o_iovec_t *admin_find_header(h2o_req_t *req, const char *name, size_t name_len)
{
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = req->headers.entries + i;
        if (h->name->len == name_len && h2o_lcstris(h->name->base, h->name->len, name, name_len))
            return &h->value;
    }
    return NULL;
}

void admin_join_header_lines(h2o_req_t *req, const char *name, size_t name_len, char sep)
{
    ssize_t first = -1;
    size_t total = 0, count = 0;
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = req->headers.entries + i;
        if (h->name->len == name_len && h2o_lcstris(h->name->base, h->name->len, name, name_len)) {
            if (first == -1)
                first = (ssize_t)i;
            total += h->value.len + 1;
            count++;
        }
    }
    if (count < 2)
        return;
    char *joined = h2o_mem_alloc_pool(&req->pool, total), *p = joined;
    size_t kept = 0;
    for (size_t i = 0; i < req->headers.size; i++) {
        h2o_header_t *h = req->headers.entries + i;
        if (h->name->len == name_len && h2o_lcstris(h->name->base, h->name->len, name, name_len)) {
            if (p != joined)
                *p++ = sep;
            memcpy(p, h->value.base, h->value.len);
            p += h->value.len;
            if ((ssize_t)i != first)
                continue;
        }
        req->headers.entries[kept++] = *h;
    }
    req->headers.size = kept;
    /* the first line kept its place: it is the first entry with this name */
    for (size_t i = 0; i < kept; i++) {
        h2o_header_t *h = req->headers.entries + i;
        if (h->name->len == name_len && h2o_lcstris(h->name->base, h->name->len, name, name_len)) {
            h->value = h2o_iovec_init(joined, (size_t)(p - joined));
            break;
        }
    }
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && ((*s)[0] == ' ' || (*s)[0] == '\t'))
        (*s)++, (*len)--;
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

int admin_request_token(h2o_req_t *req, const char **token, size_t *len)
{
    const h2o_iovec_t *v;

    if ((v = admin_find_header(req, H2O_STRLIT("fastly-key"))) != NULL) {
        *token = v->base;
        *len = v->len;
        trim(token, len);
        return 1;
    }
    if ((v = admin_find_header(req, H2O_STRLIT("authorization"))) != NULL) {
        const char *s = v->base;
        size_t n = v->len;
        trim(&s, &n);
        if (n > 7 && h2o_lcstris(s, 7, H2O_STRLIT("bearer ")) != 0) {
            s += 7, n -= 7;
            trim(&s, &n);
            *token = s;
            *len = n;
            return 1;
        }
    }
    return 0;
}

/* ---- failure budget ---- */

void admin_budget_init(admin_budget_t *b)
{
    memset(b->slots, 0, sizeof(b->slots));
    pthread_mutex_init(&b->lock, NULL);
}

void admin_budget_dispose(admin_budget_t *b)
{
    pthread_mutex_destroy(&b->lock);
}

static size_t addr_hash(const uint8_t addr[16])
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: spreads addresses; not a security boundary */
    for (int i = 0; i < 16; i++)
        h = (h ^ addr[i]) * 1099511628211ull;
    return (size_t)h;
}

int admin_budget_fail(admin_budget_t *b, const uint8_t addr[16], int64_t now)
{
    enum { PROBE = 8 };
    size_t base = addr_hash(addr) % ADMIN_BUDGET_SLOTS;
    admin_budget_slot_t *slot = NULL, *victim = NULL;
    int over;

    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < PROBE; i++) {
        admin_budget_slot_t *s = &b->slots[(base + i) % ADMIN_BUDGET_SLOTS];
        if (s->used && memcmp(s->addr, addr, 16) == 0) {
            slot = s;
            break;
        }
        /* recycle a free slot if there is one, else the one whose window began longest ago */
        if (!s->used) {
            if (victim == NULL || victim->used)
                victim = s;
        } else if (victim == NULL || (victim->used && s->window_start < victim->window_start)) {
            victim = s;
        }
    }
    if (slot == NULL) {
        slot = victim;
        memcpy(slot->addr, addr, 16);
        slot->used = 1;
        slot->window_start = now;
        slot->failures = 0;
    }
    if (now - slot->window_start >= ADMIN_BUDGET_WINDOW_S || now < slot->window_start) {
        slot->window_start = now;
        slot->failures = 0;
    }
    if (slot->failures < UINT32_MAX)
        slot->failures++;
    over = slot->failures > ADMIN_BUDGET_FAILURES;
    pthread_mutex_unlock(&b->lock);
    return over;
}

/* a peer address as 16 bytes: IPv6 as it is, IPv4 v4-mapped; zeros for anything else */
static void addr_from_sockaddr(const struct sockaddr_storage *ss, socklen_t sl, uint8_t addr[16])
{
    memset(addr, 0, 16);
    if (sl == 0)
        return;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        addr[10] = 0xff, addr[11] = 0xff;
        memcpy(addr + 12, &sin->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        memcpy(addr, &sin6->sin6_addr, 16);
    }
}

void admin_request_addr(h2o_req_t *req, uint8_t addr[16])
{
    struct sockaddr_storage ss;

    memset(addr, 0, 16);
    if (req->conn == NULL || req->conn->callbacks->get_peername == NULL)
        return;
    memset(&ss, 0, sizeof(ss));
    addr_from_sockaddr(&ss, req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss), addr);
}

void admin_socket_addr(h2o_socket_t *sock, uint8_t addr[16])
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    addr_from_sockaddr(&ss, h2o_socket_getpeername(sock, (struct sockaddr *)&ss), addr);
}

int admin_addr_is_loopback(const uint8_t addr[16])
{
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

    if (memcmp(addr, v4_mapped, 12) == 0)
        return addr[12] == 127; /* 127.0.0.0/8 */
    return memcmp(addr, v6_loopback, 16) == 0;
}

/* ---- delayed 401 ---- */

/*
 * The timer entry lives in memory shared with the request's pool: when the pool goes
 * (the client went away, the connection was closed at shutdown) the dispose callback
 * unlinks the timer, so it can never fire on a dead request. Delayed 401s of the admin
 * listener are also on their admin loop's delayed_401s (that loop's thread only), so that
 * admin shutdown can answer them at once instead of holding their connections open for the
 * delay; those of the proxy listener (worker threads) are not: they die with their worker's
 * loop.
 */
typedef struct delayed_401 {
    h2o_timeout_entry_t entry;
    h2o_linklist_t link; /* on its admin loop's delayed_401s, or unlinked */
    h2o_req_t *req;
} delayed_401_t;

static const char MSG_401[] = "Provided credentials are missing or invalid";
static const char MSG_403[] = "You are not authorized to perform this action";

static void delayed_401_send(delayed_401_t *d)
{
    h2o_req_t *req = d->req;
    assert(req != NULL);
    d->req = NULL;
    if (h2o_linklist_is_linked(&d->link))
        h2o_linklist_unlink(&d->link);
    admin_send_json_error(req, 401, MSG_401, NULL);
}

static void delayed_401_fire(h2o_timeout_entry_t *entry)
{
    delayed_401_send(H2O_STRUCT_FROM_MEMBER(delayed_401_t, entry, entry));
}

static void delayed_401_dispose(void *p)
{
    delayed_401_t *d = p;
    if (h2o_timeout_is_linked(&d->entry))
        h2o_timeout_unlink(&d->entry);
    if (h2o_linklist_is_linked(&d->link))
        h2o_linklist_unlink(&d->link);
}

void admin_auth_send_401(admin_t *admin, h2o_req_t *req, int bad_token)
{
    uint8_t addr[16];
    if (bad_token) {
        admin_loop_t *loop = admin_loop_of(admin, req->conn->ctx);
        admin_request_addr(req, addr);
        /* the failure counts even when shutdown answers at once */
        if (admin_budget_fail(&admin->budget, addr, (int64_t)time(NULL)) && !(loop != NULL && atomic_load(&admin->stopping))) {
            delayed_401_t *d = h2o_mem_alloc_shared(&req->pool, sizeof(*d), delayed_401_dispose);
            memset(d, 0, sizeof(*d));
            d->entry.cb = delayed_401_fire;
            d->req = req;
            if (loop != NULL)
                h2o_linklist_insert(&loop->delayed_401s, &d->link);
            h2o_timeout_link(req->conn->ctx->loop, &req->conn->ctx->one_sec_timeout, &d->entry);
            return;
        }
    }
    admin_send_json_error(req, 401, MSG_401, NULL);
}

size_t admin_auth_flush_delayed_401s(admin_loop_t *loop)
{
    size_t n = 0;
    assert(loop->admin->magic == ADMIN_MAGIC && atomic_load(&loop->admin->stopping));
    while (!h2o_linklist_is_empty(&loop->delayed_401s)) {
        delayed_401_t *d = H2O_STRUCT_FROM_MEMBER(delayed_401_t, link, loop->delayed_401s.next);
        h2o_timeout_unlink(&d->entry);
        delayed_401_send(d); /* unlinks d first; the response completes later, on the loop */
        n++;
    }
    return n;
}

void admin_auth_send_403(h2o_req_t *req)
{
    admin_send_json_error(req, 403, MSG_403, NULL);
}

int admin_authorize_proxy_purge_or_respond(admin_t *admin, h2o_req_t *req)
{
    admin_settings_t s;
    admin_token_rec_t rec;
    const char *tok;
    size_t tok_len;
    int ret;

    assert(admin != NULL && admin->magic == ADMIN_MAGIC);
    admin_settings_snapshot(admin, &s);
    if (!s.purge_requires_auth)
        return 0;
    if (!admin_tokens_exist(admin->store)) {
        /* No token exists yet (a fresh node, `make run`): a purge without one is allowed, but
         * only from this machine. The proxy listener faces the internet; letting anyone there
         * purge would let anyone empty the cache onto the origin. */
        uint8_t addr[16];
        admin_request_addr(req, addr);
        if (admin_addr_is_loopback(addr))
            return 0;
        admin_auth_send_401(admin, req, 0);
        return -1;
    }
    if (!admin_request_token(req, &tok, &tok_len)) {
        admin_auth_send_401(admin, req, 0);
        return -1;
    }
    if ((ret = admin_token_lookup(admin->store, tok, tok_len, &rec)) != 0) {
        admin_auth_send_401(admin, req, 1);
        return -1;
    }
    if ((rec.scopes & (ADMIN_SCOPE_PURGE_SELECT | ADMIN_SCOPE_GLOBAL)) == 0) {
        admin_auth_send_403(req);
        return -1;
    }
    return 0;
}
