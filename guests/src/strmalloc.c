/*
 * strmalloc: string- and allocator-heavy code, the kind that keeps brk and mmap busy.
 *
 *   - many allocations of varying size (16 B to 195 KiB, so glibc serves some from the heap
 *     via brk and some with mmap), filled with patterns, resized with realloc, freed in a
 *     shuffled order, each block's contents checked (sampled) before it is released
 *   - strcpy/strcat/strncpy/strcmp/strstr/strchr/strrchr/strtok_r/strtol/memmove/memchr
 *   - snprintf into buffers of every size (truncation and return values)
 *   - qsort of strings with strcmp, bsearch
 *   - a binary search tree of words (a linked structure) and a doubly linked list
 *
 * Output: counts and checksums only; no pointer values (they differ between runners).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        failures++;
        printf("FAIL: %s\n", what);
    }
}

static uint64_t rng = 0x243F6A8885A308D3ull;

static uint32_t rnd(void)
{
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}

/* ---- allocator workout ---- */

struct block {
    unsigned char *p;
    size_t size;
    unsigned char tag;
};

static size_t pick_size(void)
{
    uint32_t r = rnd() % 100;
    if (r < 60)
        return 16 + rnd() % 240;         /* small: tcache / fastbins */
    if (r < 90)
        return 256 + rnd() % 8000;       /* medium: heap */
    if (r < 98)
        return 8192 + rnd() % 40000;     /* large: heap top, brk grows */
    return 140000 + rnd() % 60000;       /* above the mmap threshold (128 KiB) */
}

/* A block holds its tag in every byte except every 61st, which holds tag + 7 * offset:
 * a block moved to the wrong place, truncated, or overwritten by a neighbour shows up at
 * a marker, and memset keeps filling cheap. Checks sample two bytes out of every 61 (a
 * marker and the byte halfway to the next), and the last byte. */
#define MARK_STRIDE 61

static unsigned char expected_byte(unsigned char tag, size_t i)
{
    return i % MARK_STRIDE == 0 ? (unsigned char)(tag + i * 7) : tag;
}

static int verify_prefix(const unsigned char *p, unsigned char tag, size_t len)
{
    for (size_t i = 0; i < len; i += MARK_STRIDE)
        if (p[i] != expected_byte(tag, i))
            return 0;
    for (size_t i = MARK_STRIDE / 2; i < len; i += MARK_STRIDE)
        if (p[i] != tag)
            return 0;
    return len == 0 || p[len - 1] == expected_byte(tag, len - 1);
}

static int verify(const struct block *b) { return verify_prefix(b->p, b->tag, b->size); }

static void fill(struct block *b)
{
    memset(b->p, b->tag, b->size);
    for (size_t i = 0; i < b->size; i += MARK_STRIDE)
        b->p[i] = expected_byte(b->tag, i);
}

/* hashes what verify samples, plus the size */
static uint64_t block_hash(const struct block *b, uint64_t h)
{
    h = fnv(&b->size, sizeof b->size, h);
    for (size_t i = 0; i < b->size; i += MARK_STRIDE / 2)
        h = (h ^ b->p[i]) * 0x100000001B3ull;
    return h;
}

static void test_allocator(void)
{
    enum { NB = 1000, ROUNDS = 5 };
    static struct block blocks[NB];
    uint64_t total_bytes = 0, reallocs = 0, frees = 0, allocs = 0;
    int bad = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < NB; i++) {
            struct block *b = &blocks[i];
            uint32_t action = rnd() % 4;
            if (b->p == NULL || action == 0) {
                if (b->p) {
                    bad += !verify(b);
                    free(b->p);
                    frees++;
                }
                b->size = pick_size();
                b->tag = (unsigned char)rnd();
                b->p = malloc(b->size);
                if (!b->p) {
                    printf("malloc(%zu) failed\n", b->size);
                    exit(2);
                }
                fill(b);
                allocs++;
                total_bytes += b->size;
            } else if (action == 1) {
                /* realloc keeps the common prefix */
                bad += !verify(b);
                size_t old = b->size;
                size_t nsize = (rnd() % 2) ? old + rnd() % (old + 1) : old / 2 + 1;
                unsigned char *np = realloc(b->p, nsize);
                if (!np) {
                    printf("realloc(%zu) failed\n", nsize);
                    exit(2);
                }
                size_t keep = old < nsize ? old : nsize;
                bad += !verify_prefix(np, b->tag, keep);
                b->p = np;
                b->size = nsize;
                fill(b);
                reallocs++;
                total_bytes += nsize;
            } else if (action == 2) {
                bad += !verify(b);
            }
        }
        /* free a random third, in shuffled order */
        for (int k = 0; k < NB / 3; k++) {
            struct block *b = &blocks[rnd() % NB];
            if (b->p) {
                bad += !verify(b);
                free(b->p);
                b->p = NULL;
                frees++;
            }
        }
        uint64_t h = 0xCBF29CE484222325ull;
        size_t live = 0, live_bytes = 0;
        for (int i = 0; i < NB; i++)
            if (blocks[i].p) {
                h = block_hash(&blocks[i], h);
                live++;
                live_bytes += blocks[i].size;
            }
        printf("alloc round %d: %zu live blocks, %zu live bytes, contents hash %016llx\n", round,
               live, live_bytes, (unsigned long long)h);
    }
    /* calloc must return zeroed memory even when it reuses freed chunks */
    for (int i = 0; i < NB; i++) {
        if (blocks[i].p) {
            bad += !verify(&blocks[i]);
            free(blocks[i].p);
            frees++;
            blocks[i].p = NULL;
        }
    }
    size_t nonzero = 0;
    for (int i = 0; i < 200; i++) {
        size_t n = 1 + rnd() % 5000;
        unsigned char *z = calloc(n, 1);
        for (size_t k = 0; k < n; k++)
            nonzero += z[k] != 0;
        memset(z, 0xAB, n);
        free(z);
    }
    printf("allocator: %llu allocs, %llu reallocs, %llu frees, %llu bytes requested, %d "
           "corrupted, calloc nonzero bytes %zu\n",
           (unsigned long long)allocs, (unsigned long long)reallocs, (unsigned long long)frees,
           (unsigned long long)total_bytes, bad, nonzero);
    check(bad == 0, "allocator kept every block intact");
    check(nonzero == 0, "calloc zeroes");
}

/* ---- string functions ---- */

static const char *const syllables[] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo",
                                        "xe", "zu", "bra", "ond", "est", "qui", "y"};

static void make_word(char *out, size_t cap)
{
    size_t n = 1 + rnd() % 4;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *s = syllables[rnd() % (sizeof syllables / sizeof syllables[0])];
        if (strlen(out) + strlen(s) + 1 > cap)
            break;
        strcat(out, s);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_strings(void)
{
    char buf[256];
    strcpy(buf, "The quick brown fox");
    strcat(buf, " jumps over");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-truncation" /* truncating is what is tested */
    strncat(buf, " the lazy dog and more text", 13);
#pragma GCC diagnostic pop
    printf("strcat: \"%s\" (%zu)\n", buf, strlen(buf));
    const char *fox = strstr(buf, "fox");
    const char *none = strstr(buf, "cat");
    printf("strstr: fox at %td, cat %s; strchr 'q' at %td; strrchr 'o' at %td\n",
           fox ? fox - buf : -1, none ? "found" : "absent", strchr(buf, 'q') - buf,
           strrchr(buf, 'o') - buf);
    printf("strcmp: %d %d %d strncmp %d\n", strcmp("abc", "abd") < 0, strcmp("b", "a") > 0,
           strcmp("same", "same") == 0, strncmp("prefix-one", "prefix-two", 7) == 0);

    /* memmove with overlap in both directions */
    char mv[32] = "0123456789abcdefghij";
    memmove(mv + 4, mv, 10);
    printf("memmove forward: %s\n", mv);
    memmove(mv, mv + 6, 10);
    printf("memmove backward: %s\n", mv);
    const char *g = memchr(mv, 'g', 20), *c = memchr(mv, 'c', 20);
    printf("memchr: 'g' at %td, 'c' %s, memcmp %d\n", g ? g - mv : -1, c ? "found" : "absent",
           memcmp("abcd", "abce", 4) < 0);

    /* strtok_r and strtol on a generated line */
    char line[] = "alpha,  -42 beta;0x1F,gamma 0755 +17,delta  999999999999";
    char *save = NULL;
    long sum = 0;
    int words = 0;
    for (char *tok = strtok_r(line, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save)) {
        char *end;
        long v = strtol(tok, &end, 0);
        if (*end == '\0')
            sum += v;
        else
            words++;
    }
    printf("strtok_r/strtol: %d words, numbers sum %ld\n", words, sum);

    /* snprintf at every buffer size: the return value never changes, the output truncates */
    char small[40];
    uint64_t h = 0;
    for (size_t cap = 0; cap <= sizeof small; cap++) {
        memset(small, '#', sizeof small);
        int n = snprintf(small, cap, "%s-%05d-%x-%c-%.3s", "item", 42, 0xBEEF, 'z', "abcdef");
        h = fnv(small, sizeof small, h) + (uint64_t)n;
        if (cap == 10 || cap == sizeof small)
            printf("snprintf cap %2zu -> %d \"%s\"\n", cap, n, small);
    }
    printf("snprintf: hash over all capacities %016llx\n", (unsigned long long)h);

    /* qsort 5000 generated words, check order, bsearch some back */
    enum { NW = 5000 };
    static char *words_arr[NW];
    for (int i = 0; i < NW; i++) {
        char w[64];
        make_word(w, sizeof w);
        snprintf(w + strlen(w), sizeof w - strlen(w), "%d", i % 97);
        words_arr[i] = malloc(strlen(w) + 1);
        strcpy(words_arr[i], w);
    }
    qsort(words_arr, NW, sizeof words_arr[0], cmp_str);
    int ordered = 1;
    size_t total_len = 0;
    for (int i = 1; i < NW; i++)
        ordered &= strcmp(words_arr[i - 1], words_arr[i]) <= 0;
    uint64_t wh = 0xCBF29CE484222325ull;
    for (int i = 0; i < NW; i++) {
        total_len += strlen(words_arr[i]);
        wh = fnv(words_arr[i], strlen(words_arr[i]) + 1, wh);
    }
    int found = 0;
    for (int i = 0; i < NW; i += 7) {
        const char *key = words_arr[i];
        found += bsearch(&key, words_arr, NW, sizeof words_arr[0], cmp_str) != NULL;
    }
    const char *missing = "zzzzzz-not-there";
    printf("qsort: %d words, ordered %d, total length %zu, first \"%s\" last \"%s\", hash "
           "%016llx\n",
           NW, ordered, total_len, words_arr[0], words_arr[NW - 1], (unsigned long long)wh);
    printf("bsearch: %d of %d found, missing key found: %d\n", found, (NW + 6) / 7,
           bsearch(&missing, words_arr, NW, sizeof words_arr[0], cmp_str) != NULL);
    check(ordered, "qsort order");
    for (int i = 0; i < NW; i++)
        free(words_arr[i]);

    /* build a long string by repeated realloc + strcat, then search in it */
    size_t cap = 16, len = 0;
    char *big = malloc(cap);
    big[0] = '\0';
    for (int i = 0; i < 20000; i++) {
        char piece[32];
        int n = snprintf(piece, sizeof piece, "<%d:%s>", i, syllables[i % 15]);
        if (len + (size_t)n + 1 > cap) {
            cap *= 2;
            big = realloc(big, cap);
        }
        memcpy(big + len, piece, (size_t)n + 1);
        len += (size_t)n;
    }
    int hits = 0;
    for (const char *p = big; (p = strstr(p, ":bra>")) != NULL; p++)
        hits++;
    const char *mark = strstr(big, "<12345:");
    printf("big string: %zu bytes (capacity %zu), \":bra>\" occurs %d times, \"<12345:\" at %td\n",
           strlen(big), cap, hits, mark ? mark - big : -1);
    free(big);
}

/* ---- linked structures ---- */

struct tnode {
    char *word;
    int count;
    struct tnode *left, *right;
};

static struct tnode *tree_insert(struct tnode *t, const char *w, int *depth, int d)
{
    if (!t) {
        t = malloc(sizeof *t);
        t->word = strdup(w);
        t->count = 1;
        t->left = t->right = NULL;
        if (d > *depth)
            *depth = d;
        return t;
    }
    int c = strcmp(w, t->word);
    if (c == 0)
        t->count++;
    else if (c < 0)
        t->left = tree_insert(t->left, w, depth, d + 1);
    else
        t->right = tree_insert(t->right, w, depth, d + 1);
    return t;
}

static void tree_walk(const struct tnode *t, uint64_t *h, int *distinct, int *total,
                      const struct tnode **best)
{
    if (!t)
        return;
    tree_walk(t->left, h, distinct, total, best);
    *h = fnv(t->word, strlen(t->word), *h) ^ (uint64_t)t->count;
    (*distinct)++;
    *total += t->count;
    if (!*best || t->count > (*best)->count)
        *best = t;
    tree_walk(t->right, h, distinct, total, best);
}

static void tree_free(struct tnode *t)
{
    if (!t)
        return;
    tree_free(t->left);
    tree_free(t->right);
    free(t->word);
    free(t);
}

struct dnode {
    int value;
    struct dnode *prev, *next;
};

static void test_linked(void)
{
    struct tnode *root = NULL;
    int depth = 0;
    for (int i = 0; i < 30000; i++) {
        char w[64];
        make_word(w, sizeof w);
        root = tree_insert(root, w, &depth, 1);
    }
    uint64_t h = 0;
    int distinct = 0, total = 0;
    const struct tnode *best = NULL;
    tree_walk(root, &h, &distinct, &total, &best);
    printf("tree: %d words, %d distinct, depth %d, most frequent \"%s\" x%d, hash %016llx\n",
           total, distinct, depth, best->word, best->count, (unsigned long long)h);
    tree_free(root);

    /* doubly linked list: append, insert in the middle, remove evens, reverse */
    struct dnode head = {0, &head, &head};
    for (int i = 0; i < 10000; i++) {
        struct dnode *n = malloc(sizeof *n);
        n->value = i;
        struct dnode *at = (i % 3 == 0) ? head.next : &head; /* front or back */
        n->next = at == &head ? &head : at;
        n->prev = at->prev;
        at->prev->next = n;
        at->prev = n;
    }
    int removed = 0;
    for (struct dnode *n = head.next; n != &head;) {
        struct dnode *next = n->next;
        if (n->value % 2 == 0) {
            n->prev->next = n->next;
            n->next->prev = n->prev;
            free(n);
            removed++;
        }
        n = next;
    }
    /* reverse in place by swapping links */
    struct dnode *n = &head;
    do {
        struct dnode *t = n->next;
        n->next = n->prev;
        n->prev = t;
        n = t;
    } while (n != &head);
    long weighted = 0;
    int count = 0, first = head.next->value, last = head.prev->value;
    for (n = head.next; n != &head; n = n->next)
        weighted += (long)n->value * ++count;
    int back_ok = 1, back = 0;
    for (n = head.prev; n != &head; n = n->prev)
        back++;
    back_ok = back == count;
    printf("list: removed %d, %d left, first %d last %d, weighted sum %ld, backward count ok "
           "%d\n",
           removed, count, first, last, weighted, back_ok);
    check(back_ok, "list links consistent");
    for (n = head.next; n != &head;) {
        struct dnode *next = n->next;
        free(n);
        n = next;
    }
}

int main(void)
{
    test_allocator();
    test_strings();
    test_linked();
    printf("strmalloc: %s (%d failures)\n", failures ? "FAILED" : "all checks passed", failures);
    return failures ? 1 : 0;
}
