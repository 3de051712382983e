/*
 * tests/unit/test_mem.c — storage/mem.c: lookups and references, the byte
 * budget (including objects larger than a shard's share), CLOCK order,
 * replace / remove, the table against a model, and a multi-threaded run whose
 * counters must add up afterwards. Meant to be run under ASan as well: an object
 * the tier drops while a caller holds a reference must stay readable.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/mem.h"

/* the refcount, as a plain number for readable failure messages */
static unsigned refs(const cache_obj_t *o)
{
    return atomic_load(&((cache_obj_t *)o)->refcnt);
}

static const obj_meta_t meta = {.status = 200, .ttl = 60};

/* An object with key "obj-<id>" (and `tag` as its surrogate key), body of body_len bytes. */
static cache_obj_t *make_obj(unsigned id, size_t body_len, const char *tag)
{
    char key[32];
    int kl = snprintf(key, sizeof(key), "obj-%u", id);
    obj_builder_t *b = obj_builder_begin(&meta, key, (size_t)kl, tag, tag ? strlen(tag) : 0, NULL, 0, NULL, 0, body_len);
    uint8_t buf[1024];
    size_t done = 0;
    while (done < body_len) {
        size_t n = body_len - done < sizeof(buf) ? body_len - done : sizeof(buf);
        memset(buf, (int)(id & 0xff), n);
        obj_builder_append(b, buf, n);
        done += n;
    }
    return obj_builder_finish(b);
}

/* Body size that gives mem_size == want (for objects made by make_obj with this id and no tag). */
static size_t body_for(unsigned id, size_t want)
{
    cache_obj_t *o = make_obj(id, 0, NULL);
    size_t base = o->mem_size;
    obj_unref(&o);
    ck_assert_uint_ge(want, base);
    return want - base;
}

static int resident(mem_tier_t *t, const cache_obj_t *o)
{
    cache_obj_t *r = mem_lookup(t, o->hash);
    int same = r == o;
    if (r != NULL)
        ck_assert_ptr_eq(r, o);
    obj_unref(&r);
    return same;
}

static void check_body(const cache_obj_t *o, unsigned id)
{
    for (uint64_t i = 0; i < o->body_len; i++)
        ck_assert_uint_eq(o->body[i], id & 0xff);
}

START_TEST(test_lookup_and_refs)
{
    mem_tier_t *t = mem_create(1 << 20, 4);
    cache_obj_t *a = make_obj(1, 100, NULL), *b = make_obj(2, 100, NULL);
    ck_assert_ptr_null(mem_lookup(t, a->hash));
    ck_assert_int_eq(mem_insert(t, a), 0);
    ck_assert_uint_eq(refs(a), 2);
    cache_obj_t *r = mem_lookup(t, a->hash);
    ck_assert_ptr_eq(r, a);
    ck_assert_uint_eq(refs(a), 3);
    obj_unref(&r);
    ck_assert_ptr_null(mem_lookup(t, b->hash));

    mem_stats_t st;
    mem_get_stats(t, &st);
    ck_assert_uint_eq(st.objects, 1);
    ck_assert_uint_eq(st.bytes, a->mem_size);
    ck_assert_uint_eq(st.budget, 1 << 20);
    ck_assert_uint_eq(st.lookups, 3);
    ck_assert_uint_eq(st.hits, 1);
    ck_assert_uint_eq(st.evictions, 0);

    mem_destroy(&t);
    ck_assert_ptr_null(t);
    ck_assert_uint_eq(refs(a), 1);
    obj_unref(&a);
    obj_unref(&b);
}
END_TEST

START_TEST(test_admission_limit)
{
    mem_tier_t *t = mem_create(40000, 2);
    cache_obj_t *big = make_obj(1, body_for(1, 10001), NULL);
    cache_obj_t *fits = make_obj(2, body_for(2, 10000), NULL);
    ck_assert_int_eq(mem_insert(t, big), -1);
    ck_assert_uint_eq(refs(big), 1);
    ck_assert(!resident(t, big));
    /* exactly a quarter is admitted, although it is half of a shard's share... */
    ck_assert_int_eq(mem_insert(t, fits), 0);
    ck_assert(resident(t, fits));
    obj_unref(&big);
    obj_unref(&fits);
    mem_destroy(&t);

    /* ...and also when it is bigger than a shard's share (40000 / 16 = 2500) */
    t = mem_create(40000, 16);
    for (unsigned id = 10; id < 30; id++) {
        cache_obj_t *o = make_obj(id, body_for(id, 9000), NULL);
        ck_assert_int_eq(mem_insert(t, o), 0);
        ck_assert(resident(t, o));
        mem_stats_t st;
        mem_get_stats(t, &st);
        ck_assert_uint_le(st.bytes, 40000);
        ck_assert_uint_le(st.objects, 4);
        obj_unref(&o);
    }
    mem_destroy(&t);
}
END_TEST

START_TEST(test_replace_by_hash)
{
    mem_tier_t *t = mem_create(1 << 20, 4);
    cache_obj_t *a = make_obj(7, 100, "old"), *b = make_obj(7, 300, "new");
    ck_assert(memcmp(a->hash, b->hash, CACHE_HASH_LEN) == 0);
    ck_assert_int_eq(mem_insert(t, a), 0);
    ck_assert_int_eq(mem_insert(t, b), 0);
    ck_assert_uint_eq(refs(a), 1); /* the tier let go of a */
    ck_assert_uint_eq(refs(b), 2);
    cache_obj_t *r = mem_lookup(t, a->hash);
    ck_assert_ptr_eq(r, b);
    obj_unref(&r);
    mem_stats_t st;
    mem_get_stats(t, &st);
    ck_assert_uint_eq(st.objects, 1);
    ck_assert_uint_eq(st.bytes, b->mem_size);
    /* inserting the resident object again keeps one tier reference */
    ck_assert_int_eq(mem_insert(t, b), 0);
    ck_assert_uint_eq(refs(b), 2);
    mem_get_stats(t, &st);
    ck_assert_uint_eq(st.objects, 1);
    ck_assert_uint_eq(st.bytes, b->mem_size);
    mem_destroy(&t);
    ck_assert_uint_eq(refs(b), 1);
    obj_unref(&a);
    obj_unref(&b);
}
END_TEST

START_TEST(test_remove)
{
    mem_tier_t *t = mem_create(1 << 20, 4);
    cache_obj_t *a = make_obj(1, 10, "v1"), *a2 = make_obj(1, 10, "v2"), *c = make_obj(3, 10, NULL);
    ck_assert_int_eq(mem_insert(t, a), 0);
    ck_assert_int_eq(mem_insert(t, c), 0);
    ck_assert_int_eq(mem_remove_if_same(t, a->hash, a2), 0);
    ck_assert(resident(t, a));
    ck_assert_int_eq(mem_remove_if_same(t, a->hash, a), 1);
    ck_assert(!resident(t, a));
    ck_assert_uint_eq(refs(a), 1);
    ck_assert_int_eq(mem_remove_if_same(t, a->hash, a), 0);
    ck_assert_int_eq(mem_remove(t, c->hash), 1);
    ck_assert_int_eq(mem_remove(t, c->hash), 0);
    ck_assert_uint_eq(refs(c), 1);
    mem_stats_t st;
    mem_get_stats(t, &st);
    ck_assert_uint_eq(st.objects, 0);
    ck_assert_uint_eq(st.bytes, 0);

    ck_assert_int_eq(mem_insert(t, a), 0);
    ck_assert_int_eq(mem_insert(t, c), 0);
    mem_clear(t);
    mem_get_stats(t, &st);
    ck_assert_uint_eq(st.objects, 0);
    ck_assert_uint_eq(st.bytes, 0);
    ck_assert_uint_eq(refs(a), 1);
    ck_assert_uint_eq(refs(c), 1);
    ck_assert(!resident(t, c));
    /* usable after clear */
    ck_assert_int_eq(mem_insert(t, c), 0);
    ck_assert(resident(t, c));
    mem_destroy(&t);
    obj_unref(&a);
    obj_unref(&a2);
    obj_unref(&c);
}
END_TEST

START_TEST(test_budget_mixed_sizes)
{
    const size_t budget = 1 << 20;
    unsigned shard_counts[] = {1, 8, 64};
    for (size_t k = 0; k < 3; k++) {
        mem_tier_t *t = mem_create(budget, shard_counts[k]);
        srand(7);
        size_t max_seen = 0;
        int rejected = 0;
        for (unsigned id = 0; id < 3000; id++) {
            size_t body = (size_t)rand() % 8000;
            if (rand() % 50 == 0)
                body = (size_t)rand() % (budget / 3); /* now and then too big, or bigger than a share */
            cache_obj_t *o = make_obj(id, body, NULL);
            int rc = mem_insert(t, o);
            if (o->mem_size > budget / 4) {
                ck_assert_int_eq(rc, -1);
                rejected++;
            } else {
                ck_assert_int_eq(rc, 0);
                ck_assert(resident(t, o)); /* the new object is never its own victim */
                if (o->mem_size > max_seen)
                    max_seen = o->mem_size;
            }
            obj_unref(&o);
            mem_stats_t st;
            mem_get_stats(t, &st);
            /* single-threaded: the slack is zero (bound asked for: budget + one max object) */
            ck_assert_uint_le(st.bytes, budget);
        }
        mem_stats_t st;
        mem_get_stats(t, &st);
        ck_assert_uint_gt(st.evictions, 1000);
        ck_assert_uint_gt(st.bytes, budget / 2);
        ck_assert_int_gt(rejected, 0);
        if (shard_counts[k] > 4) /* some admitted object was bigger than a shard's share */
            ck_assert_uint_gt(max_seen, budget / shard_counts[k]);
        mem_destroy(&t);
    }
}
END_TEST

/*
 * CLOCK: with one shard, fill it, look up every other object, then insert one
 * object that forces several evictions: only untouched objects may go.
 */
START_TEST(test_clock_order)
{
    const unsigned n = 32;
    size_t unit = 1000;
    mem_tier_t *t = mem_create(n * unit, 1);
    cache_obj_t *objs[32];
    for (unsigned i = 0; i < n; i++) {
        objs[i] = make_obj(i, body_for(i, unit), NULL);
        ck_assert_int_eq(mem_insert(t, objs[i]), 0);
    }
    mem_stats_t st;
    mem_get_stats(t, &st);
    ck_assert_uint_eq(st.objects, n);
    ck_assert_uint_eq(st.evictions, 0);
    for (unsigned i = 0; i < n; i += 2)
        ck_assert(resident(t, objs[i]));

    cache_obj_t *big = make_obj(1000, body_for(1000, 7 * unit + 500), NULL); /* needs 8 evictions */
    ck_assert_int_eq(mem_insert(t, big), 0);
    mem_get_stats(t, &st);
    ck_assert_uint_eq(st.evictions, 8);
    ck_assert_uint_le(st.bytes, n * unit);
    /* count before looking anything up again (a lookup sets the bit) */
    unsigned touched_left = 0, untouched_left = 0;
    for (unsigned i = 0; i < n; i++) {
        cache_obj_t *r = mem_lookup(t, objs[i]->hash);
        if (r != NULL)
            *(i % 2 == 0 ? &touched_left : &untouched_left) += 1;
        obj_unref(&r);
    }
    ck_assert_uint_eq(touched_left, n / 2);
    ck_assert_uint_eq(untouched_left, n / 2 - 8);
    ck_assert(resident(t, big));
    mem_destroy(&t);
    for (unsigned i = 0; i < n; i++) {
        ck_assert_uint_eq(refs(objs[i]), 1);
        obj_unref(&objs[i]);
    }
    obj_unref(&big);
}
END_TEST

/*
 * Clusters stay short under eviction. The CLOCK hand once swept the slots in order, so the
 * slots ahead of it (the longest without an eviction) filled into one cluster a lap long:
 * ~3,000 slots stepped over per eviction's backward shift at this size. Scrambled, a few.
 */
START_TEST(test_eviction_keeps_clusters_short)
{
    const size_t unit = 2000, resident_objects = 4000;
    mem_tier_t *t = mem_create(resident_objects * unit, 1);
    for (unsigned id = 0; id < 40000; id++) {
        cache_obj_t *o = make_obj(id, body_for(id, unit), NULL);
        ck_assert_int_eq(mem_insert(t, o), 0);
        obj_unref(&o);
    }
    mem_stats_t st;
    mem_get_stats(t, &st);
    ck_assert_uint_ge(st.evictions, 35000);
    ck_assert_uint_le(st.shift_steps, st.evictions * 8);
    mem_destroy(&t);
}
END_TEST

START_TEST(test_evicted_while_held)
{
    mem_tier_t *t = mem_create(64 * 1024, 1);
    cache_obj_t *o = make_obj(5, 4000, NULL);
    ck_assert_int_eq(mem_insert(t, o), 0);
    obj_unref(&o); /* the tier holds the only reference now */
    uint8_t h[CACHE_HASH_LEN];
    obj_key_hash("obj-5", 5, h);
    cache_obj_t *held = mem_lookup(t, h);
    ck_assert_ptr_nonnull(held);
    ck_assert_uint_eq(refs(held), 2);
    /* push it out (its bit is set, so it takes more than one sweep) */
    for (unsigned id = 100; id < 200; id++) {
        cache_obj_t *x = make_obj(id, 4000, NULL);
        ck_assert_int_eq(mem_insert(t, x), 0);
        obj_unref(&x);
    }
    cache_obj_t *again = mem_lookup(t, h);
    ck_assert_ptr_null(again);
    ck_assert_uint_eq(held->magic, OBJ_MAGIC);
    ck_assert_uint_eq(refs(held), 1);
    check_body(held, 5);
    ck_assert_int_eq(obj_record_validate(held->rec, held->rec_len), 0);
    /* same for remove and clear */
    cache_obj_t *y = make_obj(6, 100, NULL);
    ck_assert_int_eq(mem_insert(t, y), 0);
    cache_obj_t *y2 = mem_lookup(t, y->hash);
    obj_unref(&y);
    ck_assert_int_eq(mem_remove(t, y2->hash), 1);
    check_body(y2, 6);
    obj_unref(&y2);
    obj_unref(&held); /* freed here; ASan would report a double free or leak otherwise */
    mem_destroy(&t);
}
END_TEST

/* random operations on a table without evictions, checked against a model after each one */
START_TEST(test_table_model)
{
    enum { NKEYS = 400 };
    mem_tier_t *t = mem_create((size_t)1 << 40, 2);
    cache_obj_t *objs[NKEYS];
    int in[NKEYS] = {0};
    for (unsigned i = 0; i < NKEYS; i++)
        objs[i] = make_obj(i, i % 5, NULL);
    srand(11);
    for (int op = 0; op < 30000; op++) {
        unsigned i = (unsigned)rand() % NKEYS;
        switch (rand() % 3) {
        case 0:
            ck_assert_int_eq(mem_insert(t, objs[i]), 0);
            in[i] = 1;
            break;
        case 1:
            ck_assert_int_eq(mem_remove(t, objs[i]->hash), in[i]);
            in[i] = 0;
            break;
        default: ck_assert_int_eq(resident(t, objs[i]), in[i]);
        }
        if (op % 1000 == 0) {
            uint64_t n = 0, bytes = 0;
            for (unsigned j = 0; j < NKEYS; j++) {
                ck_assert_int_eq(resident(t, objs[j]), in[j]);
                ck_assert_uint_eq(refs(objs[j]), 1 + (unsigned)in[j]);
                n += (uint64_t)in[j];
                bytes += in[j] ? objs[j]->mem_size : 0;
            }
            mem_stats_t st;
            mem_get_stats(t, &st);
            ck_assert_uint_eq(st.objects, n);
            ck_assert_uint_eq(st.bytes, bytes);
            ck_assert_uint_eq(st.evictions, 0);
        }
    }
    mem_destroy(&t);
    for (unsigned i = 0; i < NKEYS; i++) {
        ck_assert_uint_eq(refs(objs[i]), 1);
        obj_unref(&objs[i]);
    }
}
END_TEST

/* ---- threads ---- */

enum { POOL = 600, NTHREADS = 4 };

typedef struct thread_arg {
    mem_tier_t *tier;
    cache_obj_t **pool;
    unsigned seed;
    uint64_t lookups, hits, inserts, failures;
} thread_arg_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *worker(void *p)
{
    thread_arg_t *a = p;
    double end = now_s() + 1.0;
    unsigned seed = a->seed;
    while (now_s() < end) {
        for (int k = 0; k < 64; k++) {
            unsigned i = (unsigned)rand_r(&seed) % POOL;
            cache_obj_t *o = a->pool[i];
            int op = rand_r(&seed) % 100;
            if (op < 55) {
                a->lookups++;
                cache_obj_t *r = mem_lookup(a->tier, o->hash);
                if (r != NULL) {
                    a->hits++;
                    /* what we got is the pool object, intact */
                    if (r != o || r->magic != OBJ_MAGIC || r->body_len != o->body_len ||
                        (r->body_len > 0 && r->body[r->body_len - 1] != (i & 0xff)))
                        a->failures++;
                    obj_unref(&r);
                }
            } else if (op < 85) {
                if (mem_insert(a->tier, o) != 0)
                    a->failures++;
                a->inserts++;
            } else if (op < 95) {
                (void)mem_remove(a->tier, o->hash);
            } else {
                (void)mem_remove_if_same(a->tier, o->hash, o);
            }
        }
    }
    return NULL;
}

START_TEST(test_threads)
{
    const size_t budget = 256 * 1024;
    mem_tier_t *t = mem_create(budget, 8);
    cache_obj_t *pool[POOL];
    uint64_t pool_bytes = 0;
    for (unsigned i = 0; i < POOL; i++) {
        size_t body = (i % 10 == 0) ? 20000 + i * 10 : (size_t)(i * 37 % 2000);
        pool[i] = make_obj(i, body, NULL);
        ck_assert_uint_le(pool[i]->mem_size, budget / 4);
        pool_bytes += pool[i]->mem_size;
    }
    ck_assert_uint_gt(pool_bytes, 2 * budget); /* evictions must happen */

    pthread_t th[NTHREADS];
    thread_arg_t args[NTHREADS];
    for (int k = 0; k < NTHREADS; k++) {
        args[k] = (thread_arg_t){.tier = t, .pool = pool, .seed = 1234u + (unsigned)k};
        ck_assert_int_eq(pthread_create(&th[k], NULL, worker, &args[k]), 0);
    }
    uint64_t lookups = 0, hits = 0, inserts = 0;
    for (int k = 0; k < NTHREADS; k++) {
        ck_assert_int_eq(pthread_join(th[k], NULL), 0);
        ck_assert_uint_eq(args[k].failures, 0);
        lookups += args[k].lookups;
        hits += args[k].hits;
        inserts += args[k].inserts;
    }
    ck_assert_uint_gt(inserts, 1000);

    mem_stats_t st;
    mem_get_stats(t, &st);
    ck_assert_uint_eq(st.lookups, lookups);
    ck_assert_uint_eq(st.hits, hits);
    ck_assert_uint_gt(st.evictions, 0);
    ck_assert_uint_le(st.bytes, budget);

    /* what the counters say is what is resident */
    uint64_t n = 0, bytes = 0;
    for (unsigned i = 0; i < POOL; i++) {
        unsigned rc = refs(pool[i]);
        int in = resident(t, pool[i]);
        ck_assert_uint_eq(rc, 1 + (unsigned)in);
        n += (uint64_t)in;
        bytes += in ? pool[i]->mem_size : 0;
    }
    mem_stats_t st2;
    mem_get_stats(t, &st2);
    ck_assert_uint_eq(st2.objects, n);
    ck_assert_uint_eq(st2.bytes, bytes);
    ck_assert_uint_eq(st2.lookups, st.lookups + POOL);

    mem_destroy(&t);
    for (unsigned i = 0; i < POOL; i++) {
        ck_assert_uint_eq(refs(pool[i]), 1);
        obj_unref(&pool[i]);
    }
}
END_TEST

static Suite *mem_suite(void)
{
    Suite *s = suite_create("mem");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_lookup_and_refs);
    tcase_add_test(tc, test_admission_limit);
    tcase_add_test(tc, test_replace_by_hash);
    tcase_add_test(tc, test_remove);
    tcase_add_test(tc, test_budget_mixed_sizes);
    tcase_add_test(tc, test_clock_order);
    tcase_add_test(tc, test_eviction_keeps_clusters_short);
    tcase_add_test(tc, test_evicted_while_held);
    tcase_add_test(tc, test_table_model);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mem_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
