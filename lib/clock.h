/*
 * clock — milliseconds, for deadlines (monotonic) and for times that other
 * processes or machines compare (realtime: ticket keys, logs).
 */
#ifndef TLSOFFD_CLOCK_H
#define TLSOFFD_CLOCK_H

#include <stdint.h>
#include <time.h>

#define CLOCK_MS_PER_S 1000

static inline int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CLOCK_MONOTONIC: deadlines and intervals. */
static inline int64_t clock_now_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

/* The CLOCK_MONOTONIC deadline `seconds` from now (to the nearest ms). */
static inline int64_t clock_deadline_ms(double seconds)
{
    return clock_now_ms() + (int64_t)(seconds * CLOCK_MS_PER_S + 0.5);
}

/* CLOCK_REALTIME: times shared with other processes and machines. */
static inline int64_t clock_real_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

#endif
