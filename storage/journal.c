/*
 * storage/journal.c — the purge journal (see journal_int.h for why, and for the
 * layout of the file).
 *
 * What it owns: a file descriptor, opened O_DSYNC (and a second one, O_DIRECT as well, for
 * the appends where the file system allows: journal_direct_open), on a file of a fixed size (chosen by
 * whoever created it) that was zero-filled and synced when created (under a
 * temporary name, renamed into place: a half-created journal never has the real name);
 * a table with, for each 512-byte sector, the last seq of the segment written there; the
 * next sector to write. Every block of the file is allocated (journal_reserve at each
 * open), so that a segment never needs room the file system may no longer have.
 *
 * Invariants: a segment is written only over sectors whose records have a seq at or
 * below what the caller says the main store has synced, so the records a crash could
 * still need are never overwritten. Segments are written whole, at sector boundaries;
 * a write that fails or is torn leaves sectors whose checksum fails, which readers skip.
 *
 * Reading: each open reads the ring once, in pieces of a MiB (journal_scan: a few MiB of
 * memory whatever the ring's size), and notes in the sector table where the intact segments
 * are; a replay (journal_foreach) then reads only the segments holding records it needs,
 * each on its own, and checks each again (the file is not trusted to stay as it was).
 *
 * Page cache: the ring is read whole at each open, and was zero-filled when
 * created, so all of it would sit in the kernel's page cache for as long as nothing else
 * wants the memory: 32 MiB by default, more than the rest of a small cache's data. Only
 * the pages the next appends write into are worth keeping: a 512-byte write into a page
 * the cache does not hold makes the kernel read that page first, inside the synced write a
 * purge waits for. So the journal keeps a window of JOURNAL_CACHE_WINDOW bytes from the
 * write position cached (POSIX_FADV_WILLNEED: read ahead, asynchronously) and drops the
 * rest (POSIX_FADV_DONTNEED: every page is clean, the writes being O_DSYNC), once at open
 * and at replay, then each time the writer has gone JOURNAL_CACHE_STEP further. Advice
 * only: where it is not taken (tmpfs, whose pages are the file) nothing changes. With
 * direct appends (journal_direct_open) no page is read for a write: the whole ring is
 * dropped, and no window kept.
 *
 * Threads: one thread at a time (the store's journal thread, or store_open before it starts),
 * but for journal_is_direct, which any thread may call (`direct` is the one atomic).
 */
#include "storage/journal_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/alloc.h"
#include "common/path.h"
#include "storage/le.h"

#define JOURNAL_MAGIC 0x6a6f7572u
#define JOURNAL_SEG_MAGIC 0x314a4345u /* "ECJ1" little-endian */
#define JOURNAL_HEADER 32
#define JOURNAL_OFF_CHECKSUM 24
#define JOURNAL_CACHE_WINDOW ((size_t)1 << 20) /* bytes kept cached from the write position on */
#define JOURNAL_CACHE_STEP ((size_t)256 << 10) /* how far the writer goes between two adjustments */
#define JOURNAL_PAGE ((size_t)4096)
#define JOURNAL_SCAN_PIECE ((size_t)1 << 20) /* bytes the open's scan looks for segment starts in at a time */
/* the sectors of the biggest segment there is, in bytes */
#define JOURNAL_SEG_MAX_LEN \
    (((size_t)JOURNAL_HEADER + JOURNAL_MAX_SEGMENT_BYTES + JOURNAL_SECTOR - 1) / JOURNAL_SECTOR * JOURNAL_SECTOR)

/* the key of journals written before schema version 3: public, so a segment could be forged */
static const uint8_t journal_legacy_key[JOURNAL_KEY_BYTES] = {'e', 'd', 'g', 'e', 'c', 'a', 'c', 'h',
                                                              'e', '-', 'j', 'o', 'u', 'r', 'n', 'l'};
_Static_assert(JOURNAL_KEY_BYTES == crypto_shorthash_KEYBYTES, "the journal's key is a SipHash-2-4 key");

typedef struct journal_seg {
    size_t sector;
    uint64_t first_seq;
    uint32_t records, bytes;
} journal_seg_t;

/* An intact segment holding a record this version does not know (journal_open's scan found it). */
typedef struct journal_unknown {
    size_t sector;
    uint64_t last; /* the segment's last seq: it is still there while sector_seq[sector] says so */
    uint64_t seq;  /* the record's */
} journal_unknown_t;

struct journal {
    uint32_t magic;
    int fd;
    int dfd;                        /* the same file opened O_DIRECT, for appends, or -1 (journal_direct_open) */
    _Atomic int direct;             /* appends go to dfd; cleared for good if the device refuses one (read by /stats) */
    uint8_t key[JOURNAL_KEY_BYTES]; /* of the segments' checksums */
    size_t sectors;                 /* the ring's size in sectors (the file's size / JOURNAL_SECTOR) */
    uint64_t *sector_seq;           /* `sectors` entries: last seq of the segment there, 0 = none */
    size_t pos;                     /* next sector to write */
    uint64_t last_seq;              /* highest seq in the ring */
    uint64_t written;               /* sectors used by appends since open (a wrap's skipped end included) */
    uint8_t *buf;                   /* segment being written (JOURNAL_PAGE-aligned, for dfd) */
    size_t buf_cap;
    size_t cache_at;            /* byte offset (a page's) where the cached window began when last set */
    journal_unknown_t *unknown; /* segments with a record this version does not know, normally none */
    size_t n_unknown, unknown_cap;
};

/* the kinds and payload lengths a record may have (journal_int.h) */
static int journal_rec_valid(int kind, size_t payload_len)
{
    return (kind == JOURNAL_URL && payload_len == 16) ||
           (kind == JOURNAL_SKEY && payload_len >= 1 && payload_len <= JOURNAL_MAX_PAYLOAD) ||
           (kind == JOURNAL_ALL && payload_len == 0) || (kind == JOURNAL_BUS_SEQ && payload_len == 8);
}

/* The checksum of a segment of `len` bytes at p, its checksum field taken as zero. */
static uint64_t journal_checksum(const journal_t *j, uint8_t *p, size_t len)
{
    uint8_t saved[8], out[crypto_shorthash_BYTES];
    memcpy(saved, p + JOURNAL_OFF_CHECKSUM, 8);
    memset(p + JOURNAL_OFF_CHECKSUM, 0, 8);
    crypto_shorthash(out, p, len, j->key);
    memcpy(p + JOURNAL_OFF_CHECKSUM, saved, 8);
    return le_get_u64(out);
}

/*
 * Is there an intact segment at sector `sector` of the ring, whose bytes from there on
 * (`avail` of them, read from the file) are at p? Fills *seg. Untrusted bytes: every field
 * is checked before it is used. No segment carries more than JOURNAL_MAX_SEGMENT_BYTES
 * (journal_append asserts it), so none needs more than JOURNAL_SEG_MAX_LEN bytes at p;
 * one that says it does is not one.
 */
static int journal_seg_at(const journal_t *j, uint8_t *p, size_t avail, size_t sector, journal_seg_t *seg)
{
    if (avail < JOURNAL_HEADER || le_get_u32(p) != JOURNAL_SEG_MAGIC || le_get_u16(p + 4) != JOURNAL_VERSION)
        return 0;
    size_t sectors = le_get_u16(p + 6);
    uint64_t first = le_get_u64(p + 8);
    uint32_t records = le_get_u32(p + 16), bytes = le_get_u32(p + 20);
    if (sectors == 0 || sector + sectors > j->sectors || first == 0 || records == 0 || bytes > JOURNAL_MAX_SEGMENT_BYTES ||
        (size_t)JOURNAL_HEADER + bytes > sectors * JOURNAL_SECTOR || (size_t)JOURNAL_HEADER + bytes > avail)
        return 0;
    if (journal_checksum(j, p, JOURNAL_HEADER + bytes) != le_get_u64(p + JOURNAL_OFF_CHECKSUM))
        return 0;
    /* the records must fill the payload exactly */
    size_t off = 0;
    for (uint32_t i = 0; i < records; i++) {
        if (off + 4 > bytes)
            return 0;
        size_t len = le_get_u16(p + JOURNAL_HEADER + off + 2);
        off += 4 + len;
    }
    if (off != bytes)
        return 0;
    seg->sector = sector;
    seg->first_seq = first;
    seg->records = records;
    seg->bytes = bytes;
    return 1;
}

/* The sectors a segment whose records take `bytes` occupies: its header and them, rounded up. */
static size_t journal_seg_sectors(size_t bytes)
{
    return (JOURNAL_HEADER + bytes + JOURNAL_SECTOR - 1) / JOURNAL_SECTOR;
}

/* Does every record of the intact segment at p have a kind and length this version knows?
 * If not, *seq is the first that does not. */
static int journal_seg_known(const uint8_t *p, const journal_seg_t *seg, uint64_t *seq)
{
    const uint8_t *q = p + JOURNAL_HEADER;
    for (uint32_t r = 0; r < seg->records; r++) {
        size_t len = le_get_u16(q + 2);
        if (!journal_rec_valid(q[0], len)) {
            *seq = seg->first_seq + r;
            return 0;
        }
        q += 4 + len;
    }
    return 1;
}

static int journal_read_at(int fd, uint8_t *buf, size_t len, size_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, buf + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        done += (size_t)r;
    }
    return 0;
}

/* An intact segment was found at seg->sector (p: its bytes): note where it is and what it holds. */
static void journal_scan_found(journal_t *j, const uint8_t *p, const journal_seg_t *seg)
{
    uint64_t last = seg->first_seq + seg->records - 1, bad;
    size_t sectors = journal_seg_sectors(seg->bytes);
    for (size_t k = 0; k < sectors; k++)
        j->sector_seq[seg->sector + k] = last;
    if (last > j->last_seq) {
        j->last_seq = last;
        j->pos = seg->sector + sectors; /* go on after the newest segment */
    }
    if (!journal_seg_known(p, seg, &bad)) {
        if (j->n_unknown == j->unknown_cap) {
            j->unknown_cap = j->unknown_cap == 0 ? 4 : 2 * j->unknown_cap;
            j->unknown = alloc_xrealloc(j->unknown, j->unknown_cap * sizeof(*j->unknown), "purge journal");
        }
        j->unknown[j->n_unknown++] = (journal_unknown_t){.sector = seg->sector, .last = last, .seq = bad};
    }
}

/*
 * Find the ring's intact segments and fill sector_seq, last_seq, pos and the unknown list
 * from them (what journal_foreach goes by later). The ring is read once, in pieces: the
 * buffer holds JOURNAL_SCAN_PIECE bytes where segments may start and JOURNAL_SEG_MAX_LEN
 * more, so a segment that starts in a piece is whole in the buffer however far it runs
 * past the piece's end; the next piece starts where the scan got to, the bytes already
 * read past it moved to the buffer's start. A few MiB at most, whatever the ring's size
 * (reading it whole took 32 MiB at every start). Segments never wrap round the ring's end.
 */
static int journal_scan(journal_t *j)
{
    size_t size = j->sectors * JOURNAL_SECTOR, cap = JOURNAL_SCAN_PIECE + JOURNAL_SEG_MAX_LEN;
    if (cap > size)
        cap = size;
    uint8_t *buf = alloc_xmalloc(cap, "purge journal");
    size_t base = 0, len = 0; /* buf holds the file's bytes [base, base + len) */
    for (size_t sector = 0; sector < j->sectors;) {
        size_t off = sector * JOURNAL_SECTOR; /* never past base + len: a segment found ends in the buffer */
        if (len == 0 || off - base >= JOURNAL_SCAN_PIECE) {
            size_t keep = base + len - off, want = size - off < cap ? size - off : cap;
            memmove(buf, buf + (off - base), keep);
            if (journal_read_at(j->fd, buf + keep, want - keep, off + keep) != 0) {
                free(buf);
                return JOURNAL_EIO;
            }
            base = off;
            len = want;
        }
        journal_seg_t seg;
        uint8_t *p = buf + (off - base);
        if (!journal_seg_at(j, p, len - (off - base), sector, &seg)) {
            sector++;
            continue;
        }
        journal_scan_found(j, p, &seg);
        sector += journal_seg_sectors(seg.bytes);
    }
    free(buf);
    return 0;
}

/*
 * Read the segment at `sector` into *buf (grown as needed; *cap its size): its first
 * sector, then as many more as its header says (no more than the biggest segment). 1 if
 * an intact segment is there (*seg), 0 if not (the file changed since the scan, or the
 * sectors were overwritten: skipped like any damaged segment), JOURNAL_EIO if a read failed.
 */
static int journal_read_seg(journal_t *j, size_t sector, uint8_t **buf, size_t *cap, journal_seg_t *seg)
{
    size_t off = sector * JOURNAL_SECTOR, len = JOURNAL_SECTOR;
    if (*cap < JOURNAL_SECTOR) {
        *buf = alloc_xrealloc(*buf, JOURNAL_SECTOR, "purge journal");
        *cap = JOURNAL_SECTOR;
    }
    if (journal_read_at(j->fd, *buf, JOURNAL_SECTOR, off) != 0)
        return JOURNAL_EIO;
    uint32_t bytes = le_get_u32(*buf + 20); /* untrusted: only how much to read; journal_seg_at checks it */
    if (bytes <= JOURNAL_MAX_SEGMENT_BYTES && JOURNAL_HEADER + bytes > JOURNAL_SECTOR) {
        len = journal_seg_sectors(bytes) * JOURNAL_SECTOR;
        if (len > (j->sectors - sector) * JOURNAL_SECTOR)
            len = (j->sectors - sector) * JOURNAL_SECTOR;
        if (len > *cap) {
            *buf = alloc_xrealloc(*buf, len, "purge journal");
            *cap = len;
        }
        if (journal_read_at(j->fd, *buf + JOURNAL_SECTOR, len - JOURNAL_SECTOR, off + JOURNAL_SECTOR) != 0)
            return JOURNAL_EIO;
    }
    return journal_seg_at(j, *buf, len, sector, seg);
}

/* posix_fadvise over len bytes of the ring from off, going on at its start past its end */
static void journal_advise(const journal_t *j, size_t off, size_t len, int advice)
{
    size_t size = j->sectors * JOURNAL_SECTOR;
    size_t first = len < size - off ? len : size - off;
    if (first > 0) /* a length of 0 would mean "to the end of the file" */
        (void)posix_fadvise(j->fd, (off_t)off, (off_t)first, advice);
    if (first < len)
        (void)posix_fadvise(j->fd, 0, (off_t)(len - first), advice);
}

/*
 * Keep only the window from the write position cached (see the essay): each time the
 * writer has gone JOURNAL_CACHE_STEP further (or at once when `whole`), drop everything
 * outside the window and read the window ahead. Everything, not only what the writer went
 * past since the last time: the page cache holds the file in folios of up to a few MiB
 * (ext4 makes large ones), and POSIX_FADV_DONTNEED leaves a folio the range does not wholly
 * cover, so one that straddled the window's edge goes at the next step. `whole` (at open, which
 * read the ring whole, and after a replay) first drops the whole file, folios and all.
 */
static void journal_cache_follow(journal_t *j, int whole)
{
    size_t size = j->sectors * JOURNAL_SECTOR;
    if (atomic_load_explicit(&j->direct, memory_order_relaxed)) { /* direct appends read no page first: none is worth keeping */
        if (whole)
            (void)posix_fadvise(j->fd, 0, 0, POSIX_FADV_DONTNEED);
        return;
    }
    if (size <= JOURNAL_CACHE_WINDOW + JOURNAL_CACHE_STEP)
        return; /* a ring this small stays cached whole */
    size_t at = j->pos * JOURNAL_SECTOR / JOURNAL_PAGE * JOURNAL_PAGE % size;
    if (!whole && (at + size - j->cache_at) % size < JOURNAL_CACHE_STEP)
        return;
    if (whole)
        (void)posix_fadvise(j->fd, 0, 0, POSIX_FADV_DONTNEED);
    else
        journal_advise(j, (at + JOURNAL_CACHE_WINDOW) % size, size - JOURNAL_CACHE_WINDOW, POSIX_FADV_DONTNEED);
    journal_advise(j, at, JOURNAL_CACHE_WINDOW, POSIX_FADV_WILLNEED);
    j->cache_at = at;
}

/* Create the zero-filled journal under a temporary name, sync it, rename it into place. */
static int journal_create(const char *dir, const char *path, size_t size, char *errbuf, size_t errlen)
{
    char *tmp = path_join(dir, JOURNAL_FILE ".tmp", "purge journal");
    uint8_t *zeros = alloc_xcalloc(1, 1 << 20, "purge journal");
    /* private like data.mdb (a leftover .tmp may predate that: fchmod it too) */
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600), ok = fd >= 0 && fchmod(fd, 0600) == 0;
    for (size_t done = 0; ok && done < size; done += (size_t)1 << 20) {
        size_t n = size - done < ((size_t)1 << 20) ? size - done : (size_t)1 << 20;
        ok = pwrite(fd, zeros, n, (off_t)done) == (ssize_t)n;
    }
    ok = ok && fsync(fd) == 0;
    int err = errno;
    if (fd >= 0)
        close(fd);
    ok = ok && rename(tmp, path) == 0;
    if (ok) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ok = dfd >= 0 && fsync(dfd) == 0;
        if (dfd >= 0)
            close(dfd);
    }
    if (!ok) {
        if (errno != 0)
            err = errno;
        snprintf(errbuf, errlen, "purge journal: cannot create %s: %s", path, strerror(err));
        unlink(tmp);
    }
    free(zeros);
    free(tmp);
    return ok ? 0 : JOURNAL_EIO;
}

static int journal_size_ok(uintmax_t size)
{
    return size >= JOURNAL_MIN_SIZE && size <= JOURNAL_MAX_SIZE && size % JOURNAL_SECTOR == 0;
}

/*
 * Open the journal a second time, O_DIRECT | O_DSYNC, for appends. A direct synced write
 * of whole sectors goes to the device as it is: no page to find, fill and write back, no
 * page the cache dropped to read first. It is the write every durable purge waits for:
 * one synced 1 KiB write took 52 us against 63 us through the page cache on this
 * project's virtio disk (write-back cache, no FUA; four alternations, idle), and the
 * device gets the segment's sectors rather than whole 4 KiB pages. Where the file system
 * refuses direct I/O the appends stay on the buffered O_DSYNC descriptor, as durable.
 * Opened through /proc/self/fd, not by the journal's name: the file fd has open (and the
 * scan read), even if the name was replaced meanwhile. Without /proc, no direct appends.
 */
static int journal_direct_open(int fd)
{
    char self[64];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
    return open(self, O_RDWR | O_DSYNC | O_DIRECT | O_CLOEXEC);
}

/*
 * Make sure every block of the ring is allocated. A journal created here is zero-filled,
 * but one copied by a sparse-aware tool, or restored from a backup, may have holes, and a
 * write into a hole needs a block the file system may not have: on a full disk, purges
 * would fail (answered with an error, never acknowledged) although the journal exists.
 * Filling the holes now, while there may be room, keeps purges working on a full disk.
 * Only said when it fails: where it is not supported (or there is no room) the journal
 * still works, as before.
 */
static void journal_reserve(int fd, off_t size, const char *path)
{
    if (fallocate(fd, 0, 0, size) != 0 && errno != EOPNOTSUPP && errno != ENOSYS)
        fprintf(stderr, "edgecache: purge journal: cannot reserve the room of %s (%s): a purge may fail on a full disk\n",
                path, strerror(errno));
}

int journal_open(journal_t **out, const char *dir, size_t size_if_new, const uint8_t key[JOURNAL_KEY_BYTES], char *errbuf,
                 size_t errlen)
{
    char *path = path_join(dir, JOURNAL_FILE, "purge journal");
    journal_t *j = alloc_xcalloc(1, sizeof(*j), "purge journal");
    j->fd = j->dfd = -1;
    memcpy(j->key, key != NULL ? key : journal_legacy_key, JOURNAL_KEY_BYTES);
    *out = NULL;
    if (sodium_init() < 0) {
        snprintf(errbuf, errlen, "purge journal: libsodium failed to initialise");
        goto fail;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT) {
            snprintf(errbuf, errlen, "purge journal: %s: %s", path, strerror(errno));
            goto fail;
        }
        assert(journal_size_ok(size_if_new));
        if (journal_create(dir, path, size_if_new, errbuf, errlen) != 0)
            goto fail;
    } else if (!S_ISREG(st.st_mode) || !journal_size_ok((uintmax_t)st.st_size)) {
        /* never zero it: it may hold the only record of acknowledged purges */
        snprintf(errbuf, errlen,
                 "purge journal: %s is not a file of %zu MiB to %zu MiB in %d-byte sectors; move it away only if the "
                 "store is known to be synced",
                 path, JOURNAL_MIN_SIZE >> 20, JOURNAL_MAX_SIZE >> 20, JOURNAL_SECTOR);
        goto fail;
    }
    if ((j->fd = open(path, O_RDWR | O_DSYNC | O_CLOEXEC)) < 0 || fstat(j->fd, &st) != 0) {
        snprintf(errbuf, errlen, "purge journal: %s: %s", path, strerror(errno));
        goto fail;
    }
    j->sectors = (size_t)st.st_size / JOURNAL_SECTOR; /* checked above, or just created */
    journal_reserve(j->fd, (off_t)st.st_size, path);

    j->sector_seq = alloc_xcalloc(1, j->sectors * sizeof(*j->sector_seq), "purge journal");
    if (journal_scan(j) != 0) {
        snprintf(errbuf, errlen, "purge journal: cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    if (j->pos >= j->sectors)
        j->pos = 0;
    j->dfd = journal_direct_open(j->fd);
    atomic_init(&j->direct, j->dfd >= 0);
    journal_cache_follow(j, 1);
    free(path);
    j->magic = JOURNAL_MAGIC;
    *out = j;
    return 0;

fail:
    if (j->fd >= 0)
        close(j->fd);
    if (j->dfd >= 0)
        close(j->dfd);
    free(j->sector_seq);
    free(j->unknown);
    free(j);
    free(path);
    return JOURNAL_EIO;
}

void journal_rekey(journal_t *j, const uint8_t key[JOURNAL_KEY_BYTES])
{
    assert(j->magic == JOURNAL_MAGIC);
    memcpy(j->key, key, JOURNAL_KEY_BYTES);
    /* under the new key every segment there fails its checksum: the whole ring is free */
    memset(j->sector_seq, 0, j->sectors * sizeof(*j->sector_seq));
}

void journal_close(journal_t **jp)
{
    journal_t *j = *jp;
    if (j == NULL)
        return;
    assert(j->magic == JOURNAL_MAGIC);
    *jp = NULL;
    close(j->fd);
    if (j->dfd >= 0)
        close(j->dfd);
    free(j->sector_seq);
    free(j->unknown);
    free(j->buf);
    j->magic = 0;
    free(j);
}

/* A zeroed buffer of n bytes aligned for direct I/O (a page covers any sector size up to one). */
static uint8_t *journal_aligned_alloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, JOURNAL_PAGE, n) != 0) {
        fprintf(stderr, "edgecache: purge journal: out of memory (%zu bytes)\n", n);
        abort(); /* as alloc_xcalloc does */
    }
    memset(p, 0, n);
    return p;
}

int journal_append(journal_t *j, const journal_rec_t *recs, size_t n, uint64_t synced_upto)
{
    assert(j->magic == JOURNAL_MAGIC);
    assert(n > 0 && recs[0].seq > j->last_seq);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        /* what journal_foreach accepts: an intact record it refused would block every later open */
        assert(recs[i].seq == recs[0].seq + i);
        assert(journal_rec_valid(recs[i].kind, recs[i].payload_len));
        bytes += 4 + recs[i].payload_len;
    }
    assert(bytes <= JOURNAL_MAX_SEGMENT_BYTES); /* callers bound their batches (store_journal_thread.c) */
    size_t sectors = journal_seg_sectors(bytes);
    size_t pos = j->pos + sectors > j->sectors ? 0 : j->pos;
    for (size_t k = 0; k < sectors; k++)
        if (j->sector_seq[pos + k] > synced_upto)
            return JOURNAL_EFULL;

    size_t used = sectors + (pos == j->pos ? 0 : j->sectors - j->pos);
    size_t len = sectors * JOURNAL_SECTOR;
    if (len > j->buf_cap) {
        free(j->buf);
        j->buf = journal_aligned_alloc(len);
        j->buf_cap = len;
    }
    uint8_t *p = j->buf;
    memset(p, 0, len);
    le_put_u32(p, JOURNAL_SEG_MAGIC);
    le_put_u16(p + 4, JOURNAL_VERSION);
    le_put_u16(p + 6, (uint16_t)sectors);
    le_put_u64(p + 8, recs[0].seq);
    le_put_u32(p + 16, (uint32_t)n);
    le_put_u32(p + 20, (uint32_t)bytes);
    uint8_t *q = p + JOURNAL_HEADER;
    for (size_t i = 0; i < n; i++) {
        q[0] = (uint8_t)recs[i].kind;
        q[1] = (uint8_t)recs[i].flags;
        le_put_u16(q + 2, (uint16_t)recs[i].payload_len);
        if (recs[i].payload_len > 0)
            memcpy(q + 4, recs[i].payload, recs[i].payload_len);
        q += 4 + recs[i].payload_len;
    }
    le_put_u64(p + JOURNAL_OFF_CHECKSUM, journal_checksum(j, p, JOURNAL_HEADER + bytes));

    /* O_DSYNC: the write returns once the sectors are on stable storage */
    size_t done = 0;
    while (done < len) {
        int direct = atomic_load_explicit(&j->direct, memory_order_relaxed);
        ssize_t w = pwrite(direct ? j->dfd : j->fd, p + done, len - done, (off_t)(pos * JOURNAL_SECTOR + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EINVAL && direct) { /* the device wants more alignment than a sector */
            fprintf(stderr, "edgecache: purge journal: direct writes refused (%s); writing through the page cache\n",
                    strerror(errno));
            atomic_store_explicit(&j->direct, 0, memory_order_relaxed);
            journal_cache_follow(j, 1);
            continue;
        }
        if (w <= 0) {
            fprintf(stderr, "edgecache: purge journal: write failed: %s\n", w < 0 ? strerror(errno) : "short write");
            for (size_t k = 0; k < sectors; k++)
                j->sector_seq[pos + k] = 0; /* whatever is there now fails its checksum */
            return JOURNAL_EIO;
        }
        done += (size_t)w;
    }
    uint64_t last = recs[n - 1].seq;
    for (size_t k = 0; k < sectors; k++)
        j->sector_seq[pos + k] = last;
    j->pos = pos + sectors;
    j->last_seq = last;
    j->written += used;
    journal_cache_follow(j, 0);
    return 0;
}

static int journal_seg_cmp(const void *a, const void *b)
{
    const journal_seg_t *x = a, *y = b;
    return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

int journal_foreach(journal_t *j, uint64_t after, int (*fn)(void *arg, const journal_rec_t *rec), void *arg)
{
    assert(j->magic == JOURNAL_MAGIC);
    /* an intact record this version does not know, in a segment still there: never half-apply a journal.
     * Those at or below `after` are not read again: the scan saw them; the others are, below. */
    for (size_t i = 0; i < j->n_unknown; i++) {
        const journal_unknown_t *u = &j->unknown[i];
        if (u->last <= after && u->last != 0 && j->sector_seq[u->sector] == u->last) {
            fprintf(stderr, "edgecache: purge journal: record %llu has an unknown kind or length\n", (unsigned long long)u->seq);
            return JOURNAL_EIO;
        }
    }
    /* the segments holding records above `after`: sector_seq (the scan's, and the appends' since) says where */
    journal_seg_t *segs = NULL;
    size_t nsegs = 0, cap = 0, buf_cap = 0;
    uint8_t *buf = NULL;
    int ret = 0;
    for (size_t sector = 0; sector < j->sectors && ret == 0;) {
        journal_seg_t seg;
        int rc = j->sector_seq[sector] > after ? journal_read_seg(j, sector, &buf, &buf_cap, &seg) : 0;
        if (rc < 0) {
            ret = JOURNAL_EIO;
        } else if (rc == 0) {
            sector++;
        } else {
            if (nsegs == cap) {
                cap = cap == 0 ? 16 : cap * 2;
                segs = alloc_xrealloc(segs, cap * sizeof(*segs), "purge journal");
            }
            segs[nsegs++] = seg;
            sector += journal_seg_sectors(seg.bytes);
        }
    }
    if (nsegs > 1)
        qsort(segs, nsegs, sizeof(*segs), journal_seg_cmp);
    /* each read again on its own, in seq order; one that changed since is skipped like any damaged one */
    for (size_t i = 0; i < nsegs && ret == 0; i++) {
        journal_seg_t seg;
        int rc = journal_read_seg(j, segs[i].sector, &buf, &buf_cap, &seg);
        if (rc < 0)
            ret = JOURNAL_EIO;
        if (rc <= 0 || seg.first_seq != segs[i].first_seq || seg.records != segs[i].records || seg.bytes != segs[i].bytes)
            continue;
        const uint8_t *q = buf + JOURNAL_HEADER;
        for (uint32_t r = 0; r < seg.records && ret == 0; r++) {
            journal_rec_t rec = {.seq = seg.first_seq + r, .kind = q[0], .flags = q[1]};
            rec.payload_len = le_get_u16(q + 2);
            rec.payload = q + 4;
            q += 4 + rec.payload_len;
            if (!journal_rec_valid(rec.kind, rec.payload_len)) { /* intact but unknown to this version: never half-apply a journal */
                fprintf(stderr, "edgecache: purge journal: record %llu has an unknown kind or length\n",
                        (unsigned long long)rec.seq);
                ret = JOURNAL_EIO;
            } else if (rec.seq > after) {
                ret = fn(arg, &rec);
            }
        }
    }
    free(buf);
    free(segs);
    journal_cache_follow(j, 1); /* what the scan read is in the page cache: keep only the window */
    return ret;
}

int journal_is_direct(journal_t *j)
{
    assert(j->magic == JOURNAL_MAGIC);
    return atomic_load_explicit(&j->direct, memory_order_relaxed);
}

uint64_t journal_last_seq(journal_t *j)
{
    assert(j->magic == JOURNAL_MAGIC);
    return j->last_seq;
}

uint64_t journal_sectors_written(journal_t *j)
{
    assert(j->magic == JOURNAL_MAGIC);
    return j->written;
}

size_t journal_ring_sectors(journal_t *j)
{
    assert(j->magic == JOURNAL_MAGIC);
    return j->sectors;
}
