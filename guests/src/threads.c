/*
 * threads: pthread workloads whose results are fixed whatever the scheduling. Only totals,
 * checksums and facts that hold for every interleaving are printed; never thread ids,
 * times or which thread did what.
 *
 *   1. mutex: 4 threads x 250 000 increments of a plain counter under a mutex; trylock,
 *      recursive and error-checking mutexes
 *   2. condvar: 3 producers, 2 consumers over a bounded queue of 8 (count, sum, sum of
 *      squares of the items consumed; each consumer sees each producer's items in order)
 *   3. rwlock: 2 writers move amounts between 16 slots whose total is invariant, 3 readers
 *      check the total under the read lock; the final slots are order-independent
 *   4. barrier: 4 threads, 50 phases of double-buffered updates, each phase's sum taken by
 *      the one PTHREAD_BARRIER_SERIAL_THREAD and checked against a serial computation
 *   5. __thread TLS (initialised data, zeroed bss, a string): each thread's own values,
 *      all alive at once (distinct addresses), summed
 *   6. pthread_join return values (returned and via pthread_exit from a nested call)
 *   7. detached threads (attribute and pthread_detach), completion seen through an atomic
 *      counter and a futex wait, and through a semaphore
 *   8. 1 000 threads created and joined in batches of 50 (small stacks)
 *   9. 16 threads at once (more than host cores), started together by a barrier
 *  10. pthread_once from 8 threads at once
 *  11. pthread_key_create destructors (NULL values skipped, a destructor that re-sets its
 *      value runs again)
 *  12. sem_t: ping-pong between two threads, a counting semaphore bounding concurrency,
 *      sem_trywait / sem_getvalue
 *
 * A failed check prints "FAIL" and makes the exit code 1.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        failures++;
        printf("FAIL: %s\n", what);
    }
}

static void die(const char *what, int err)
{
    printf("FATAL: %s: error %d\n", what, err);
    fflush(stdout);
    exit(2);
}

static pthread_t spawn_attr(const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int e = pthread_create(&t, attr, fn, arg);
    if (e)
        die("pthread_create", e);
    return t;
}

static pthread_t spawn(void *(*fn)(void *), void *arg) { return spawn_attr(NULL, fn, arg); }

static void *join(pthread_t t)
{
    void *ret;
    int e = pthread_join(t, &ret);
    if (e)
        die("pthread_join", e);
    return ret;
}

/* A small deterministic integer workload: n rounds of a 64-bit mix seeded by seed. */
static uint64_t mix_work(uint64_t seed, int n)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < n; i++) {
        x ^= x >> 31;
        x *= 0xBF58476D1CE4E5B9ull;
        x += (uint64_t)i;
        x ^= x >> 29;
    }
    return x;
}

/* ---- 1. mutex ---- */

#define MUTEX_THREADS 4
#define MUTEX_ITERS 250000

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *mutex_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < MUTEX_ITERS; i++) {
        pthread_mutex_lock(&counter_lock);
        counter++;
        pthread_mutex_unlock(&counter_lock);
    }
    return NULL;
}

static void *trylock_other(void *arg)
{
    /* from another thread: trylock of a locked mutex fails with EBUSY */
    return (void *)(intptr_t)pthread_mutex_trylock((pthread_mutex_t *)arg);
}

static void test_mutex(void)
{
    pthread_t t[MUTEX_THREADS];
    for (int i = 0; i < MUTEX_THREADS; i++)
        t[i] = spawn(mutex_worker, NULL);
    for (int i = 0; i < MUTEX_THREADS; i++)
        join(t[i]);
    printf("1. mutex: %d threads x %d increments -> %ld\n", MUTEX_THREADS, MUTEX_ITERS, counter);
    check(counter == (long)MUTEX_THREADS * MUTEX_ITERS, "mutex counter");

    pthread_mutex_lock(&counter_lock);
    int busy = (int)(intptr_t)join(spawn(trylock_other, &counter_lock));
    pthread_mutex_unlock(&counter_lock);
    int free_ok = pthread_mutex_trylock(&counter_lock);
    if (free_ok == 0)
        pthread_mutex_unlock(&counter_lock);

    pthread_mutexattr_t ma;
    pthread_mutex_t rec, errchk;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&rec, &ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&errchk, &ma);
    pthread_mutexattr_destroy(&ma);
    int r1 = pthread_mutex_lock(&rec), r2 = pthread_mutex_lock(&rec);
    int r3 = (int)(intptr_t)join(spawn(trylock_other, &rec));
    int r4 = pthread_mutex_unlock(&rec), r5 = pthread_mutex_unlock(&rec);
    int e1 = pthread_mutex_lock(&errchk), e2 = pthread_mutex_lock(&errchk);
    int e3 = pthread_mutex_unlock(&errchk), e4 = pthread_mutex_unlock(&errchk);
    printf("   trylock: locked elsewhere -> %s, free -> %d; recursive: lock %d %d, other "
           "thread -> %s, unlock %d %d; errorcheck: relock -> %s, unlock unowned -> %s\n",
           busy == EBUSY ? "EBUSY" : "?", free_ok, r1, r2, r3 == EBUSY ? "EBUSY" : "?", r4, r5,
           e2 == EDEADLK ? "EDEADLK" : "?", e4 == EPERM ? "EPERM" : "?");
    check(busy == EBUSY && free_ok == 0 && r1 == 0 && r2 == 0 && r3 == EBUSY && r4 == 0 &&
              r5 == 0 && e1 == 0 && e2 == EDEADLK && e3 == 0 && e4 == EPERM,
          "mutex types");
    pthread_mutex_destroy(&rec);
    pthread_mutex_destroy(&errchk);
}

/* ---- 2. condvar producer/consumer ---- */

#define QCAP 8
#define PRODUCERS 3
#define CONSUMERS 2
#define ITEMS_PER_PRODUCER 20000

static struct {
    pthread_mutex_t m;
    pthread_cond_t not_full, not_empty;
    long items[QCAP];
    int head, count;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0};

static void q_put(long v)
{
    pthread_mutex_lock(&q.m);
    while (q.count == QCAP)
        pthread_cond_wait(&q.not_full, &q.m);
    q.items[(q.head + q.count) % QCAP] = v;
    q.count++;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.m);
}

static long q_get(void)
{
    pthread_mutex_lock(&q.m);
    while (q.count == 0)
        pthread_cond_wait(&q.not_empty, &q.m);
    long v = q.items[q.head];
    q.head = (q.head + 1) % QCAP;
    q.count--;
    pthread_cond_signal(&q.not_full);
    pthread_mutex_unlock(&q.m);
    return v;
}

/* item i of producer p: p in the high part, i + 1 in the low part */
static long item_value(int p, int i) { return (long)p * 1000000 + i + 1; }

static void *producer(void *arg)
{
    int p = (int)(intptr_t)arg;
    for (int i = 0; i < ITEMS_PER_PRODUCER; i++)
        q_put(item_value(p, i));
    return NULL;
}

struct consumer_result {
    long count, sum;
    uint64_t sumsq;
    int out_of_order;
};

static void *consumer(void *arg)
{
    struct consumer_result *r = arg;
    long last[PRODUCERS] = {0};
    for (;;) {
        long v = q_get();
        if (v < 0)
            break;
        int p = (int)(v / 1000000);
        long i = v % 1000000;
        if (p >= PRODUCERS || i <= last[p])
            r->out_of_order++;
        else
            last[p] = i;
        r->count++;
        r->sum += v;
        r->sumsq += (uint64_t)v * (uint64_t)v;
    }
    return NULL;
}

static void test_condvar(void)
{
    pthread_t prod[PRODUCERS], cons[CONSUMERS];
    struct consumer_result res[CONSUMERS];
    memset(res, 0, sizeof res);
    for (int c = 0; c < CONSUMERS; c++)
        cons[c] = spawn(consumer, &res[c]);
    for (int p = 0; p < PRODUCERS; p++)
        prod[p] = spawn(producer, (void *)(intptr_t)p);
    for (int p = 0; p < PRODUCERS; p++)
        join(prod[p]);
    for (int c = 0; c < CONSUMERS; c++)
        q_put(-1); /* one end marker per consumer */
    for (int c = 0; c < CONSUMERS; c++)
        join(cons[c]);
    long count = 0, sum = 0, want_sum = 0;
    uint64_t sumsq = 0, want_sumsq = 0;
    int disorder = 0;
    for (int c = 0; c < CONSUMERS; c++) {
        count += res[c].count;
        sum += res[c].sum;
        sumsq += res[c].sumsq;
        disorder += res[c].out_of_order;
    }
    for (int p = 0; p < PRODUCERS; p++)
        for (int i = 0; i < ITEMS_PER_PRODUCER; i++) {
            long v = item_value(p, i);
            want_sum += v;
            want_sumsq += (uint64_t)v * (uint64_t)v;
        }
    printf("2. condvar queue (capacity %d): %d producers x %d items, %d consumers: consumed %ld, "
           "sum %ld, sum of squares %llu, out of order %d, queue left %d\n",
           QCAP, PRODUCERS, ITEMS_PER_PRODUCER, CONSUMERS, count, sum,
           (unsigned long long)sumsq, disorder, q.count);
    check(count == (long)PRODUCERS * ITEMS_PER_PRODUCER && sum == want_sum &&
              sumsq == want_sumsq && disorder == 0 && q.count == 0,
          "condvar queue");
}

/* ---- 3. rwlock ---- */

#define RW_SLOTS 16
#define RW_WRITERS 2
#define RW_READERS 3
#define RW_WRITES 5000
#define RW_READS 10000

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static long rw_data[RW_SLOTS];
static long rw_reads, rw_writes, rw_bad; /* updated under rw_stats */
static pthread_mutex_t rw_stats = PTHREAD_MUTEX_INITIALIZER;

static void rw_move(int w, int i, int *from, int *to, long *amount)
{
    *from = (i * 5 + w) % RW_SLOTS;
    *to = (i * 11 + 3 * w + 1) % RW_SLOTS;
    if (*to == *from)
        *to = (*to + 1) % RW_SLOTS;
    *amount = (i * 7 + w) % 50 + 1;
}

static void *rw_writer(void *arg)
{
    int w = (int)(intptr_t)arg;
    for (int i = 0; i < RW_WRITES; i++) {
        int from, to;
        long amount;
        rw_move(w, i, &from, &to, &amount);
        pthread_rwlock_wrlock(&rw);
        rw_data[from] -= amount;
        if (i % 64 == 0)
            sched_yield(); /* hold the lock a while: readers must wait */
        rw_data[to] += amount;
        pthread_rwlock_unlock(&rw);
    }
    pthread_mutex_lock(&rw_stats);
    rw_writes += RW_WRITES;
    pthread_mutex_unlock(&rw_stats);
    return NULL;
}

static void *rw_reader(void *arg)
{
    (void)arg;
    long bad = 0;
    for (int i = 0; i < RW_READS; i++) {
        pthread_rwlock_rdlock(&rw);
        long total = 0;
        for (int s = 0; s < RW_SLOTS; s++)
            total += rw_data[s];
        bad += total != 1000L * RW_SLOTS;
        pthread_rwlock_unlock(&rw);
    }
    pthread_mutex_lock(&rw_stats);
    rw_reads += RW_READS;
    rw_bad += bad;
    pthread_mutex_unlock(&rw_stats);
    return NULL;
}

static void test_rwlock(void)
{
    for (int s = 0; s < RW_SLOTS; s++)
        rw_data[s] = 1000;
    pthread_t t[RW_WRITERS + RW_READERS];
    for (int i = 0; i < RW_READERS; i++)
        t[i] = spawn(rw_reader, NULL);
    for (int w = 0; w < RW_WRITERS; w++)
        t[RW_READERS + w] = spawn(rw_writer, (void *)(intptr_t)w);
    for (int i = 0; i < RW_WRITERS + RW_READERS; i++)
        join(t[i]);
    /* the moves commute, so the final slots are known */
    long want[RW_SLOTS];
    for (int s = 0; s < RW_SLOTS; s++)
        want[s] = 1000;
    for (int w = 0; w < RW_WRITERS; w++)
        for (int i = 0; i < RW_WRITES; i++) {
            int from, to;
            long amount;
            rw_move(w, i, &from, &to, &amount);
            want[from] -= amount;
            want[to] += amount;
        }
    long weighted = 0;
    int wrong = 0;
    for (int s = 0; s < RW_SLOTS; s++) {
        weighted += rw_data[s] * (s + 1);
        wrong += rw_data[s] != want[s];
    }
    /* single-thread facts: readers share, a writer excludes */
    pthread_rwlock_rdlock(&rw);
    int tr = pthread_rwlock_tryrdlock(&rw);
    int tw = pthread_rwlock_trywrlock(&rw);
    if (tr == 0)
        pthread_rwlock_unlock(&rw);
    pthread_rwlock_unlock(&rw);
    printf("3. rwlock: %ld reads (invariant broken %ld), %ld writes; final slots weighted sum "
           "%ld, wrong slots %d; tryrdlock under a reader -> %d, trywrlock -> %s\n",
           rw_reads, rw_bad, rw_writes, weighted, wrong, tr, tw == EBUSY ? "EBUSY" : "?");
    check(rw_reads == (long)RW_READERS * RW_READS && rw_bad == 0 &&
              rw_writes == (long)RW_WRITERS * RW_WRITES && wrong == 0 && tr == 0 && tw == EBUSY,
          "rwlock");
}

/* ---- 4. barrier ---- */

#define BAR_THREADS 4
#define BAR_PHASES 50

static pthread_barrier_t bar;
static uint64_t bar_buf[2][BAR_THREADS];
static uint64_t phase_sum[BAR_PHASES];
static int serial_count;

static uint64_t bar_step(const uint64_t *cur, int t, int p)
{
    return (cur[t] * 3 + cur[(t + 1) % BAR_THREADS]) ^ (uint64_t)(p * 0x1234567 + t);
}

static void *bar_worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int p = 0; p < BAR_PHASES; p++) {
        const uint64_t *cur = bar_buf[p & 1];
        uint64_t *nxt = bar_buf[(p + 1) & 1];
        nxt[t] = bar_step(cur, t, p);
        int r = pthread_barrier_wait(&bar);
        if (r == PTHREAD_BARRIER_SERIAL_THREAD) {
            uint64_t s = 0;
            for (int i = 0; i < BAR_THREADS; i++)
                s += nxt[i];
            phase_sum[p] = s;
            serial_count++; /* only one thread per phase; phases are barrier-separated */
        } else if (r != 0) {
            die("pthread_barrier_wait", r);
        }
    }
    return NULL;
}

static void test_barrier(void)
{
    pthread_barrier_init(&bar, NULL, BAR_THREADS);
    for (int t = 0; t < BAR_THREADS; t++)
        bar_buf[0][t] = (uint64_t)t + 1;
    pthread_t th[BAR_THREADS];
    for (int t = 0; t < BAR_THREADS; t++)
        th[t] = spawn(bar_worker, (void *)(intptr_t)t);
    for (int t = 0; t < BAR_THREADS; t++)
        join(th[t]);
    pthread_barrier_destroy(&bar);
    uint64_t cur[BAR_THREADS], nxt[BAR_THREADS], fold = 0;
    int wrong = 0;
    for (int t = 0; t < BAR_THREADS; t++)
        cur[t] = (uint64_t)t + 1;
    for (int p = 0; p < BAR_PHASES; p++) {
        uint64_t s = 0;
        for (int t = 0; t < BAR_THREADS; t++)
            s += nxt[t] = bar_step(cur, t, p);
        memcpy(cur, nxt, sizeof cur);
        wrong += s != phase_sum[p];
        fold = fold * 31 + phase_sum[p];
    }
    printf("4. barrier: %d threads, %d phases, serial thread %d times, phase 0 sum %llu, last "
           "phase sum %llu, fold %llu, wrong phases %d\n",
           BAR_THREADS, BAR_PHASES, serial_count, (unsigned long long)phase_sum[0],
           (unsigned long long)phase_sum[BAR_PHASES - 1], (unsigned long long)fold, wrong);
    check(serial_count == BAR_PHASES && wrong == 0, "barrier");
}

/* ---- 5. TLS ---- */

#define TLS_THREADS 8

static __thread long tls_counter = 100;
static __thread int tls_array[64];
static __thread char tls_name[16] = "initial";

static pthread_barrier_t tls_bar;
static void *tls_addr[TLS_THREADS];
static int tls_bad_init;
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;

static void *tls_worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    int bad = tls_counter != 100 || strcmp(tls_name, "initial") != 0;
    for (int i = 0; i < 64; i++)
        bad |= tls_array[i] != 0;
    tls_counter = t * 1000L;
    snprintf(tls_name, sizeof tls_name, "thread %d", t);
    tls_addr[t] = &tls_counter;
    pthread_barrier_wait(&tls_bar); /* all alive at once: addresses must differ */
    for (int i = 0; i < 20000; i++) {
        tls_counter += i % 7;
        tls_array[i % 64] += t + 1;
        if (i % 2000 == 0)
            sched_yield();
    }
    char want[16];
    snprintf(want, sizeof want, "thread %d", t);
    bad |= strcmp(tls_name, want) != 0;
    long sum = tls_counter;
    for (int i = 0; i < 64; i++)
        sum += tls_array[i];
    pthread_mutex_lock(&tls_lock);
    tls_bad_init += bad;
    pthread_mutex_unlock(&tls_lock);
    return (void *)(intptr_t)sum;
}

static void test_tls(void)
{
    tls_counter = 5; /* main's own copy; the threads start from the initial image */
    pthread_barrier_init(&tls_bar, NULL, TLS_THREADS);
    pthread_t th[TLS_THREADS];
    for (int t = 0; t < TLS_THREADS; t++)
        th[t] = spawn(tls_worker, (void *)(intptr_t)t);
    long sum = 0, want = 0;
    for (int t = 0; t < TLS_THREADS; t++)
        sum += (long)(intptr_t)join(th[t]);
    pthread_barrier_destroy(&tls_bar);
    for (int t = 0; t < TLS_THREADS; t++) {
        long c = t * 1000L;
        for (int i = 0; i < 20000; i++)
            c += i % 7;
        want += c + 20000L * (t + 1);
    }
    int distinct = 1;
    for (int a = 0; a < TLS_THREADS; a++)
        for (int b = a + 1; b < TLS_THREADS; b++)
            distinct &= tls_addr[a] != tls_addr[b];
    for (int a = 0; a < TLS_THREADS; a++)
        distinct &= tls_addr[a] != (void *)&tls_counter;
    printf("5. tls: %d threads, sum of their values %ld, wrong initial values %d, distinct "
           "addresses %s, main's own counter still %ld\n",
           TLS_THREADS, sum, tls_bad_init, distinct ? "yes" : "no", tls_counter);
    check(sum == want && tls_bad_init == 0 && distinct && tls_counter == 5, "tls");
}

/* ---- 6. join return values ---- */

#define JOIN_THREADS 10

static void leave_early(long v) { pthread_exit((void *)(intptr_t)v); }

static void *join_worker(void *arg)
{
    long i = (long)(intptr_t)arg;
    long v = i * i + 1 + (long)(mix_work((uint64_t)i, 1000) & 0xFF);
    if (i % 2)
        leave_early(v);
    return (void *)(intptr_t)v;
}

static void test_join(void)
{
    pthread_t th[JOIN_THREADS];
    for (int i = 0; i < JOIN_THREADS; i++)
        th[i] = spawn(join_worker, (void *)(intptr_t)i);
    long sum = 0, want = 0;
    for (int i = JOIN_THREADS - 1; i >= 0; i--) /* joined in reverse order */
        sum += (long)(intptr_t)join(th[i]);
    for (long i = 0; i < JOIN_THREADS; i++)
        want += i * i + 1 + (long)(mix_work((uint64_t)i, 1000) & 0xFF);
    printf("6. join: %d return values (half via pthread_exit), sum %ld\n", JOIN_THREADS, sum);
    check(sum == want, "join values");
}

/* ---- 7. detached threads ---- */

#define DETACHED 20

static int detached_done;         /* futex word */
static uint64_t detached_sum;     /* atomic */
static sem_t detached_sem;
static uint64_t detached_sem_sum; /* atomic */

static long futex(int *uaddr, int op, int val)
{
    return syscall(SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

static void *detached_futex_worker(void *arg)
{
    uint64_t r = mix_work((uint64_t)(intptr_t)arg, 2000);
    __atomic_fetch_add(&detached_sum, r, __ATOMIC_RELAXED);
    __atomic_fetch_add(&detached_done, 1, __ATOMIC_RELEASE);
    futex(&detached_done, FUTEX_WAKE_PRIVATE, 1);
    return NULL;
}

static void *detached_sem_worker(void *arg)
{
    pthread_detach(pthread_self());
    uint64_t r = mix_work((uint64_t)(intptr_t)arg + 100, 2000);
    __atomic_fetch_add(&detached_sem_sum, r, __ATOMIC_RELAXED);
    sem_post(&detached_sem);
    return NULL;
}

static void test_detached(void)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < DETACHED; i++)
        spawn_attr(&attr, detached_futex_worker, (void *)(intptr_t)i);
    pthread_attr_destroy(&attr);
    for (;;) { /* how often main sleeps here depends on the scheduling: not printed */
        int v = __atomic_load_n(&detached_done, __ATOMIC_ACQUIRE);
        if (v == DETACHED)
            break;
        futex(&detached_done, FUTEX_WAIT_PRIVATE, v);
    }

    sem_init(&detached_sem, 0, 0);
    for (int i = 0; i < DETACHED; i++)
        spawn(detached_sem_worker, (void *)(intptr_t)i);
    for (int i = 0; i < DETACHED; i++)
        while (sem_wait(&detached_sem) != 0)
            ;
    uint64_t want1 = 0, want2 = 0;
    for (int i = 0; i < DETACHED; i++) {
        want1 += mix_work((uint64_t)i, 2000);
        want2 += mix_work((uint64_t)i + 100, 2000);
    }
    printf("7. detached: %d via attribute, seen by futex wait: done %d, sum %llu; %d via "
           "pthread_detach, seen by sem_wait: sum %llu\n",
           DETACHED, __atomic_load_n(&detached_done, __ATOMIC_ACQUIRE),
           (unsigned long long)__atomic_load_n(&detached_sum, __ATOMIC_RELAXED), DETACHED,
           (unsigned long long)__atomic_load_n(&detached_sem_sum, __ATOMIC_RELAXED));
    check(__atomic_load_n(&detached_sum, __ATOMIC_RELAXED) == want1 &&
              __atomic_load_n(&detached_sem_sum, __ATOMIC_RELAXED) == want2,
          "detached");
}

/* ---- 8. many threads in batches ---- */

#define MANY 1000
#define BATCH 50

static void *many_worker(void *arg)
{
    long i = (long)(intptr_t)arg;
    return (void *)(intptr_t)(long)(mix_work((uint64_t)i, 200) % 1000003);
}

static void test_many(void)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    long sum = 0, want = 0;
    for (int base = 0; base < MANY; base += BATCH) {
        pthread_t th[BATCH];
        for (int k = 0; k < BATCH; k++)
            th[k] = spawn_attr(&attr, many_worker, (void *)(intptr_t)(base + k));
        for (int k = 0; k < BATCH; k++)
            sum += (long)(intptr_t)join(th[k]);
    }
    pthread_attr_destroy(&attr);
    for (long i = 0; i < MANY; i++)
        want += (long)(mix_work((uint64_t)i, 200) % 1000003);
    printf("8. many: %d threads created and joined %d at a time, sum of results %ld\n", MANY,
           BATCH, sum);
    check(sum == want, "many threads");
}

/* ---- 9. more threads than cores ---- */

#define WIDE 16

static pthread_barrier_t wide_bar;

static void *wide_worker(void *arg)
{
    long t = (long)(intptr_t)arg;
    pthread_barrier_wait(&wide_bar);
    uint64_t acc = 0;
    for (int k = 0; k < 50; k++)
        acc += mix_work((uint64_t)(t * 100 + k), 2000);
    return (void *)(uintptr_t)acc;
}

static void test_wide(void)
{
    pthread_barrier_init(&wide_bar, NULL, WIDE + 1);
    pthread_t th[WIDE];
    for (int t = 0; t < WIDE; t++)
        th[t] = spawn(wide_worker, (void *)(intptr_t)t);
    pthread_barrier_wait(&wide_bar); /* all 16 exist before any starts working */
    uint64_t sum = 0, want = 0;
    for (int t = 0; t < WIDE; t++)
        sum += (uint64_t)(uintptr_t)join(th[t]);
    pthread_barrier_destroy(&wide_bar);
    for (long t = 0; t < WIDE; t++)
        for (int k = 0; k < 50; k++)
            want += mix_work((uint64_t)(t * 100 + k), 2000);
    printf("9. wide: %d threads at once, checksum %llu\n", WIDE, (unsigned long long)sum);
    check(sum == want, "wide");
}

/* ---- 10. pthread_once ---- */

#define ONCE_THREADS 8

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_calls; /* atomic */
static int once_value;
static pthread_barrier_t once_bar;

static void once_init(void)
{
    __atomic_fetch_add(&once_calls, 1, __ATOMIC_RELAXED);
    sched_yield(); /* give the others time to arrive and wait */
    once_value = (int)(mix_work(42, 5000) % 1000) + 1;
}

static void *once_worker(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&once_bar);
    pthread_once(&once, once_init);
    return (void *)(intptr_t)once_value; /* every caller sees the initialised value */
}

static void test_once(void)
{
    pthread_barrier_init(&once_bar, NULL, ONCE_THREADS);
    pthread_t th[ONCE_THREADS];
    for (int t = 0; t < ONCE_THREADS; t++)
        th[t] = spawn(once_worker, NULL);
    int same = 1;
    int want = (int)(mix_work(42, 5000) % 1000) + 1;
    for (int t = 0; t < ONCE_THREADS; t++)
        same &= (int)(intptr_t)join(th[t]) == want;
    pthread_barrier_destroy(&once_bar);
    pthread_once(&once, once_init);
    printf("10. once: %d threads, init ran %d time(s), all saw value %d: %s\n", ONCE_THREADS,
           once_calls, want, same ? "yes" : "no");
    check(once_calls == 1 && same, "pthread_once");
}

/* ---- 11. thread-specific data destructors ---- */

#define KEY_THREADS 6

static pthread_key_t key1, key2;
static long key1_calls, key1_sum, key2_calls; /* atomic */

static void key1_dtor(void *v)
{
    __atomic_fetch_add(&key1_calls, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&key1_sum, *(long *)v, __ATOMIC_RELAXED);
    free(v);
}

static void key2_dtor(void *v)
{
    /* runs again while it keeps setting a value (up to PTHREAD_DESTRUCTOR_ITERATIONS) */
    long n = (long)(intptr_t)v;
    __atomic_fetch_add(&key2_calls, 1, __ATOMIC_RELAXED);
    if (n < 3)
        pthread_setspecific(key2, (void *)(intptr_t)(n + 1));
}

static void *key_worker(void *arg)
{
    long t = (long)(intptr_t)arg;
    long *v = malloc(sizeof *v);
    *v = (t + 1) * 10;
    pthread_setspecific(key1, v);
    pthread_setspecific(key2, (void *)(intptr_t)1);
    int ok = pthread_getspecific(key1) == v;
    if (t == 0) { /* a NULL value: its destructor is not called */
        pthread_setspecific(key1, NULL);
        free(v);
    }
    return (void *)(intptr_t)ok;
}

static void test_keys(void)
{
    pthread_key_create(&key1, key1_dtor);
    pthread_key_create(&key2, key2_dtor);
    pthread_t th[KEY_THREADS];
    int ok = 1;
    for (int t = 0; t < KEY_THREADS; t++)
        th[t] = spawn(key_worker, (void *)(intptr_t)t);
    for (int t = 0; t < KEY_THREADS; t++)
        ok &= (int)(intptr_t)join(th[t]);
    int main_null = pthread_getspecific(key1) == NULL;
    pthread_key_delete(key1);
    pthread_key_delete(key2);
    long want_sum = 0;
    for (int t = 1; t < KEY_THREADS; t++)
        want_sum += (t + 1) * 10L;
    printf("11. keys: %d threads; destructor 1 ran %ld times (one value NULL), sum %ld; "
           "destructor 2 (re-sets twice) ran %ld times; main's value NULL: %s\n",
           KEY_THREADS, key1_calls, key1_sum, key2_calls, main_null ? "yes" : "no");
    check(ok && main_null && key1_calls == KEY_THREADS - 1 && key1_sum == want_sum &&
              key2_calls == 3L * KEY_THREADS,
          "key destructors");
}

/* ---- 12. semaphores ---- */

#define PINGPONG 5000
#define POOL 3
#define POOL_THREADS 8
#define POOL_ROUNDS 200

static sem_t ping, pong, pool;
static uint64_t pp_state; /* plain: the semaphores order every access */
static int pool_in_use, pool_over; /* atomic */

static void *pinger(void *arg)
{
    (void)arg;
    for (int i = 0; i < PINGPONG; i++) {
        sem_wait(&ping);
        pp_state = pp_state * 31 + (uint64_t)i;
        sem_post(&pong);
    }
    return NULL;
}

static void *ponger(void *arg)
{
    (void)arg;
    for (int i = 0; i < PINGPONG; i++) {
        sem_wait(&pong);
        pp_state ^= (uint64_t)i * 0x9E3779B97F4A7C15ull;
        sem_post(&ping);
    }
    return NULL;
}

static void *pool_worker(void *arg)
{
    uint64_t acc = 0;
    for (int r = 0; r < POOL_ROUNDS; r++) {
        sem_wait(&pool);
        int n = __atomic_add_fetch(&pool_in_use, 1, __ATOMIC_ACQ_REL);
        if (n > POOL)
            __atomic_fetch_add(&pool_over, 1, __ATOMIC_RELAXED);
        acc += mix_work((uint64_t)(intptr_t)arg * 1000 + (uint64_t)r, 50);
        __atomic_sub_fetch(&pool_in_use, 1, __ATOMIC_ACQ_REL);
        sem_post(&pool);
    }
    return (void *)(uintptr_t)acc;
}

static void test_sem(void)
{
    sem_init(&ping, 0, 1);
    sem_init(&pong, 0, 0);
    pthread_t a = spawn(pinger, NULL), b = spawn(ponger, NULL);
    join(a);
    join(b);
    uint64_t want = 0;
    for (int i = 0; i < PINGPONG; i++) {
        want = want * 31 + (uint64_t)i;
        want ^= (uint64_t)i * 0x9E3779B97F4A7C15ull;
    }

    sem_init(&pool, 0, POOL);
    pthread_t th[POOL_THREADS];
    for (int t = 0; t < POOL_THREADS; t++)
        th[t] = spawn(pool_worker, (void *)(intptr_t)t);
    uint64_t acc = 0, want_acc = 0;
    for (int t = 0; t < POOL_THREADS; t++)
        acc += (uint64_t)(uintptr_t)join(th[t]);
    for (int t = 0; t < POOL_THREADS; t++)
        for (int r = 0; r < POOL_ROUNDS; r++)
            want_acc += mix_work((uint64_t)t * 1000 + (uint64_t)r, 50);
    int value = -1;
    sem_getvalue(&pool, &value);
    int ping_value = -1;
    sem_getvalue(&ping, &ping_value);
    int tw = sem_trywait(&pong);
    int tw_errno = errno;
    printf("12. sem: ping-pong %d rounds -> %llu; pool of %d for %d threads x %d rounds: over "
           "the limit %d times, checksum %llu, value after %d; ping left %d; trywait on 0 -> "
           "%d %s\n",
           PINGPONG, (unsigned long long)pp_state, POOL, POOL_THREADS, POOL_ROUNDS, pool_over,
           (unsigned long long)acc, value, ping_value, tw, tw_errno == EAGAIN ? "EAGAIN" : "?");
    check(pp_state == want && pool_over == 0 && acc == want_acc && value == POOL &&
              ping_value == 1 && tw == -1 && tw_errno == EAGAIN,
          "semaphores");
    sem_destroy(&ping);
    sem_destroy(&pong);
    sem_destroy(&pool);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_mutex();
    test_condvar();
    test_rwlock();
    test_barrier();
    test_tls();
    test_join();
    test_detached();
    test_many();
    test_wide();
    test_once();
    test_keys();
    test_sem();
    printf("threads: %s (%d failures)\n", failures ? "FAILED" : "all checks passed", failures);
    return failures ? 1 : 0;
}
