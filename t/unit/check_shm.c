#include "unit.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>

#include "shm.h"

static char err[512];

START_TEST(create_and_regions)
{
    struct shm s;
    size_t sizes[SHM_NREGIONS] = { 100000, 3000, 1 };
    ck_assert_msg(shm_create(&s, sizes, err, sizeof err) == 0, "%s", err);
    size_t sz;
    char *a = shm_region(&s, SHM_SESSCACHE, &sz);
    ck_assert_uint_eq(sz, 100000);
    char *b = shm_region(&s, SHM_STATS, &sz);
    ck_assert_uint_eq(sz, 3000);
    ck_assert(b >= a + 100000);                 /* regions do not overlap */
    ck_assert(((uintptr_t)a & 4095) == 0);      /* page aligned */
    memset(a, 0xab, 100000);
    memset(b, 0xcd, 3000);
    ck_assert_uint_eq((unsigned char)a[99999], 0xab);
    shm_detach(&s);
}
END_TEST

START_TEST(shared_after_fork_and_attach)
{
    struct shm s, t;
    size_t sizes[SHM_NREGIONS] = { 4096, 4096, 4096 };
    ck_assert(shm_create(&s, sizes, err, sizeof err) == 0);
    int *p = shm_region(&s, SHM_STATS, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        *p = 42;
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    ck_assert_int_eq(*p, 42);
    /* A second mapping of the same fd (as a new binary after exec would
     * make) sees the same bytes. */
    ck_assert_msg(shm_attach(&t, dup(s.fd), err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(*(int *)shm_region(&t, SHM_STATS, NULL), 42);
    /* The fd survives exec: no close-on-exec flag. */
    ck_assert_int_eq(fcntl(s.fd, F_GETFD) & FD_CLOEXEC, 0);
    shm_detach(&t);
    shm_detach(&s);
}
END_TEST

START_TEST(attach_by_pid)
{
    struct shm s, t;
    size_t sizes[SHM_NREGIONS] = { 4096, 4096, 4096 };
    ck_assert(shm_create(&s, sizes, err, sizeof err) == 0);
    ck_assert_msg(shm_attach_pid(&t, getpid(), err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(t.hdr->creator_pid, getpid());
    shm_detach(&t);
    shm_detach(&s);
    ck_assert_int_eq(shm_attach_pid(&t, 1, err, sizeof err), -1);
}
END_TEST

START_TEST(refuses_foreign_layout)
{
    struct shm s, t;
    size_t sizes[SHM_NREGIONS] = { 4096, 4096, 4096 };
    ck_assert(shm_create(&s, sizes, err, sizeof err) == 0);
    s.hdr->layout_version = SHM_LAYOUT_VERSION + 1;
    ck_assert_int_eq(shm_attach(&t, dup(s.fd), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "layout version this binary does not know"), "%s", err);
    s.hdr->layout_version = SHM_LAYOUT_VERSION;
    s.hdr->magic = 0x1234;
    ck_assert_int_eq(shm_attach(&t, dup(s.fd), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "bad magic"), "%s", err);
    s.hdr->magic = SHM_MAGIC;
    s.hdr->region[SHM_STATS].size = 1u << 30;
    ck_assert_int_eq(shm_attach(&t, dup(s.fd), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "outside the segment"), "%s", err);
    /* Not a segment at all. */
    int fd = memfd_create("other", 0);
    ck_assert_int_eq(ftruncate(fd, 8192), 0);
    ck_assert_int_eq(shm_attach(&t, fd, err, sizeof err), -1);
    close(fd);
    shm_detach(&s);
}
END_TEST

/* Sizes that wrap around when added to their offset are refused too. */
START_TEST(refuses_wrapping_regions)
{
    struct shm s, t;
    size_t sizes[SHM_NREGIONS] = { 4096, 4096, 4096 };
    ck_assert(shm_create(&s, sizes, err, sizeof err) == 0);
    s.hdr->region[SHM_STATS].size = UINT64_MAX - s.hdr->region[SHM_STATS].offset + 4096;
    ck_assert_int_eq(shm_attach(&t, dup(s.fd), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "outside the segment"), "%s", err);
    s.hdr->region[SHM_STATS].size = 4096;
    s.hdr->region[SHM_STATS].offset = UINT64_MAX - 100;
    ck_assert_int_eq(shm_attach(&t, dup(s.fd), err, sizeof err), -1);
    /* Regions over one another. */
    s.hdr->region[SHM_STATS].offset = s.hdr->region[SHM_SESSCACHE].offset;
    ck_assert_int_eq(shm_attach(&t, dup(s.fd), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "over another"), "%s", err);
    shm_detach(&s);
}
END_TEST

/* The geometry is this process's copy: what another process writes into
 * the header afterwards moves nothing. */
START_TEST(geometry_is_private)
{
    struct shm s, t;
    size_t sizes[SHM_NREGIONS] = { 8192, 4096, 4096 };
    ck_assert(shm_create(&s, sizes, err, sizeof err) == 0);
    ck_assert_msg(shm_attach(&t, dup(s.fd), err, sizeof err) == 0, "%s", err);
    char *a = shm_region(&s, SHM_STATS, NULL), *b = shm_region(&t, SHM_STATS, NULL);
    for (int r = 0; r < SHM_NREGIONS; r++) {
        s.hdr->region[r].offset = 1ull << 40;
        s.hdr->region[r].size = 1ull << 41;
    }
    size_t sz;
    ck_assert_ptr_eq(shm_region(&s, SHM_STATS, &sz), a);
    ck_assert_uint_eq(sz, 4096);
    ck_assert_ptr_eq(shm_region(&t, SHM_STATS, &sz), b);
    ck_assert_uint_eq(sz, 4096);
    ck_assert_uint_eq(b - (char *)t.base, a - (char *)s.base);
    shm_detach(&t);
    shm_detach(&s);
}
END_TEST

/* No holder of the fd can shrink the segment under the others' mappings. */
START_TEST(size_is_sealed)
{
    struct shm s, u;
    size_t sizes[SHM_NREGIONS] = { 4096, 4096, 4096 };
    ck_assert(shm_create(&s, sizes, err, sizeof err) == 0);
    ck_assert_int_eq(ftruncate(s.fd, 0), -1);
    ck_assert_int_eq(errno, EPERM);
    ck_assert(shm_blob_create(&u, "check-blob", 100, err, sizeof err) == 0);
    ck_assert_int_eq(ftruncate(u.fd, 0), -1);
    ck_assert_int_eq(ftruncate(u.fd, 1 << 20), -1);
    shm_detach(&u);
    shm_detach(&s);
}
END_TEST

/* Whether writing one byte at p kills the process (in a child). */
static bool write_faults(volatile char *p)
{
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);       /* not a sanitizer's report */
        *p = 1;
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
}

/* -s stats: another process's segment, read-only through and through. */
START_TEST(attach_by_pid_is_read_only)
{
    struct shm s, t, u, v;
    size_t sizes[SHM_NREGIONS] = { 4096, 4096, 4096 };
    ck_assert(shm_create(&s, sizes, err, sizeof err) == 0);
    ck_assert(shm_blob_create(&u, "check-blob", 100, err, sizeof err) == 0);
    ck_assert_msg(shm_attach_pid(&t, getpid(), err, sizeof err) == 0, "%s", err);
    ck_assert_msg(shm_blob_attach_pid(&v, getpid(), "check-blob", err, sizeof err) == 0, "%s",
                  err);
    ck_assert_int_eq(fcntl(t.fd, F_GETFL) & O_ACCMODE, O_RDONLY);
    ck_assert_int_eq(fcntl(v.fd, F_GETFL) & O_ACCMODE, O_RDONLY);
    ck_assert(write_faults(shm_region(&t, SHM_STATS, NULL)));
    ck_assert(write_faults(v.base));
    ck_assert_int_eq(mprotect(t.base, t.size, PROT_READ | PROT_WRITE), -1);
    ck_assert_int_eq(errno, EACCES);
    *(char *)u.base = 7;
    ck_assert_int_eq(*(char *)v.base, 7);
    shm_detach(&v);
    shm_detach(&t);
    shm_detach(&u);
    shm_detach(&s);
}
END_TEST

/* A child's view of a blob: read-only for good, and no fd left. */
START_TEST(make_readonly)
{
    struct shm s;
    ck_assert(shm_blob_create(&s, "check-ro", 5000, err, sizeof err) == 0);
    char *p = s.base;
    int fd = s.fd;
    p[4999] = 3;
    ck_assert_msg(shm_make_readonly(&s, err, sizeof err) == 0, "%s", err);
    ck_assert_ptr_eq(s.base, p);
    ck_assert_int_eq(s.fd, -1);
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1);           /* closed */
    ck_assert_int_eq(p[4999], 3);
    ck_assert(write_faults(p));
    ck_assert(write_faults(p + 4999));
    ck_assert_int_eq(mprotect(p, s.size, PROT_READ | PROT_WRITE), -1);
    ck_assert_int_eq(errno, EACCES);
    ck_assert_int_eq(shm_make_readonly(&s, err, sizeof err), -1);
    shm_detach(&s);
}
END_TEST

/* After exec, a blob is found again among this process's own fds. */
START_TEST(blob_take)
{
    struct shm s, t;
    ck_assert(shm_blob_create(&s, "check-take", 100, err, sizeof err) == 0);
    *(int *)s.base = 99;
    ck_assert_msg(shm_blob_take(&t, "check-take", err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(t.fd, s.fd);
    ck_assert_int_eq(*(int *)t.base, 99);
    munmap(t.base, t.size);
    ck_assert_int_eq(shm_blob_take(&t, "check-none", err, sizeof err), -1);
    shm_detach(&s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("shm");
    TCase *tc = tcase_create("shm");
    tcase_add_test(tc, create_and_regions);
    tcase_add_test(tc, shared_after_fork_and_attach);
    tcase_add_test(tc, attach_by_pid);
    tcase_add_test(tc, refuses_foreign_layout);
    tcase_add_test(tc, refuses_wrapping_regions);
    tcase_add_test(tc, geometry_is_private);
    tcase_add_test(tc, size_is_sealed);
    tcase_add_test(tc, attach_by_pid_is_read_only);
    tcase_add_test(tc, make_readonly);
    tcase_add_test(tc, blob_take);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
