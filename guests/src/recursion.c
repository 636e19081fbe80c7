/*
 * recursion: call-heavy code and deep stacks.
 *
 *   - Ackermann A(2, n) and A(3, n) (millions of calls, recursion depth up to ~2^(n+3))
 *   - naive Fibonacci (exponential call tree, shallow)
 *   - a recursive-descent parser and evaluator for integer expressions, run on a
 *     generated expression with deep nesting
 *   - mutual recursion (is_even/is_odd) and a deliberately deep linear recursion of
 *     100000 frames, each with a small local array, inside the default 8 MiB stack
 *   - Tower of Hanoi and a recursive permutation generator
 *
 * The deep functions are noinline and keep live state across the call, so the compiler
 * cannot turn them into loops (tail-call elimination would hide the depth).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static uint64_t calls;

static void check(int ok, const char *what)
{
    if (!ok) {
        failures++;
        printf("FAIL: %s\n", what);
    }
}

__attribute__((noinline)) static uint64_t ackermann(uint64_t m, uint64_t n)
{
    calls++;
    if (m == 0)
        return n + 1;
    if (n == 0)
        return ackermann(m - 1, 1);
    return ackermann(m - 1, ackermann(m, n - 1));
}

__attribute__((noinline)) static uint64_t fib(unsigned n)
{
    calls++;
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

/* ---- recursive-descent expression parser ----
 * expr   := term (('+' | '-') term)*
 * term   := factor (('*' | '/' | '%') factor)*
 * factor := '-' factor | number | '(' expr ')'
 * Arithmetic is modulo 2^64 (unsigned), division by zero yields 0, so every generated
 * expression has a defined value. */

struct parser {
    const char *p;
    int depth, max_depth;
    int error;
};

static uint64_t parse_expr(struct parser *ps);

static void skip_space(struct parser *ps)
{
    while (*ps->p == ' ')
        ps->p++;
}

__attribute__((noinline)) static uint64_t parse_factor(struct parser *ps)
{
    skip_space(ps);
    if (++ps->depth > ps->max_depth)
        ps->max_depth = ps->depth;
    uint64_t v = 0;
    if (*ps->p == '-') {
        ps->p++;
        v = 0 - parse_factor(ps);
    } else if (*ps->p == '(') {
        ps->p++;
        v = parse_expr(ps);
        skip_space(ps);
        if (*ps->p == ')')
            ps->p++;
        else
            ps->error = 1;
    } else if (*ps->p >= '0' && *ps->p <= '9') {
        while (*ps->p >= '0' && *ps->p <= '9')
            v = v * 10 + (uint64_t)(*ps->p++ - '0');
    } else {
        ps->error = 1;
    }
    ps->depth--;
    return v;
}

static uint64_t parse_term(struct parser *ps)
{
    uint64_t v = parse_factor(ps);
    for (;;) {
        skip_space(ps);
        char op = *ps->p;
        if (op != '*' && op != '/' && op != '%')
            return v;
        ps->p++;
        uint64_t r = parse_factor(ps);
        if (op == '*')
            v *= r;
        else if (op == '/')
            v = r ? v / r : 0;
        else
            v = r ? v % r : 0;
    }
}

__attribute__((noinline)) static uint64_t parse_expr(struct parser *ps)
{
    uint64_t v = parse_term(ps);
    for (;;) {
        skip_space(ps);
        char op = *ps->p;
        if (op != '+' && op != '-')
            return v;
        ps->p++;
        uint64_t r = parse_term(ps);
        v = op == '+' ? v + r : v - r;
    }
}

/* generator: a random expression with the same grammar, nesting up to max_depth */
static uint64_t gen_state = 88172645463325252ull;

static unsigned gen_rand(unsigned n)
{
    gen_state ^= gen_state << 13;
    gen_state ^= gen_state >> 7;
    gen_state ^= gen_state << 17;
    return (unsigned)(gen_state % n);
}

struct buf {
    char *s;
    size_t len, cap;
};

static void put(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap) {
        while (b->len + n + 1 > b->cap)
            b->cap = b->cap ? b->cap * 2 : 1024;
        b->s = realloc(b->s, b->cap);
        if (!b->s) {
            printf("out of memory\n");
            exit(2);
        }
    }
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

static void gen_expr(struct buf *b, int depth);

/* The first factor of an expression nests one level deeper (so nesting reaches `depth`);
 * any other factor nests only rarely and shallowly, which keeps the expected size linear
 * in depth instead of exponential. */
static void gen_factor(struct buf *b, int depth, int spine)
{
    unsigned r = gen_rand(10);
    int nest = spine ? depth : (r == 0 ? (depth < 2 ? depth : 2) : 0);
    if (nest > 0) {
        put(b, "(");
        gen_expr(b, nest - 1);
        put(b, ")");
    } else if (r == 4) {
        put(b, "-");
        gen_factor(b, 0, 0);
    } else {
        char num[24];
        snprintf(num, sizeof num, "%u", gen_rand(1000));
        put(b, num);
    }
}

static void gen_expr(struct buf *b, int depth)
{
    int terms = 1 + (int)gen_rand(3);
    for (int t = 0; t < terms; t++) {
        if (t)
            put(b, gen_rand(2) ? " + " : " - ");
        int factors = 1 + (int)gen_rand(3);
        for (int f = 0; f < factors; f++) {
            if (f)
                put(b, (const char *[]){" * ", " / ", " % "}[gen_rand(3)]);
            gen_factor(b, depth, t == 0 && f == 0);
        }
    }
}

static void test_parser(void)
{
    static const struct {
        const char *src;
        uint64_t want;
    } fixed[] = {
        {"1 + 2 * 3", 7},
        {"(1 + 2) * 3", 9},
        {"100 / 7 % 4 - -3", 5},
        {"((((((((((42))))))))))", 42},
        {"2 * (3 + 4 * (5 - 6 / (1 + 1)))", 22},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        struct parser ps = {fixed[i].src, 0, 0, 0};
        uint64_t v = parse_expr(&ps);
        printf("parse \"%s\" = %lld%s\n", fixed[i].src, (long long)v, ps.error ? " (error)" : "");
        check(v == fixed[i].want && !ps.error, "fixed expression");
    }

    /* a long random expression: 300 generated subexpressions, each nested up to 40 deep */
    struct buf b = {0};
    for (int i = 0; i < 300; i++) {
        put(&b, i ? " + (" : "(");
        gen_expr(&b, 40);
        put(&b, ")");
    }
    struct parser ps = {b.s, 0, 0, 0};
    uint64_t v = parse_expr(&ps);
    printf("generated expression: %zu chars, value %016llx, max nesting %d, parsed to end %d\n",
           b.len, (unsigned long long)v, ps.max_depth, *ps.p == '\0' && !ps.error);
    free(b.s);

    /* deep nesting: 20000 parentheses around a unary chain */
    enum { NEST = 20000 };
    char *deep = malloc(2 * NEST + 16);
    size_t k = 0;
    for (int i = 0; i < NEST; i++)
        deep[k++] = (i % 3 == 2) ? '-' : '(';
    deep[k++] = '7';
    for (int i = 0; i < NEST; i++)
        if (i % 3 != 2)
            deep[k++] = ')';
    deep[k] = '\0';
    struct parser dp = {deep, 0, 0, 0};
    uint64_t dv = parse_expr(&dp);
    printf("deep expression: %zu chars, value %lld, max nesting %d, ok %d\n", k, (long long)dv,
           dp.max_depth, *dp.p == '\0' && !dp.error);
    free(deep);
}

/* ---- deep linear recursion ---- */

__attribute__((noinline)) static uint64_t deep(int n, uint64_t acc)
{
    /* a local array and work after the call keep every frame alive */
    volatile uint32_t local[4];
    local[0] = (uint32_t)n;
    local[1] = (uint32_t)(acc >> 32);
    local[2] = (uint32_t)acc;
    local[3] = local[0] ^ local[2];
    if (n == 0)
        return acc;
    uint64_t r = deep(n - 1, acc * 6364136223846793005ull + (uint64_t)n);
    return r ^ ((uint64_t)local[3] << (n % 32)) ^ local[1];
}

__attribute__((noinline)) static int is_odd(unsigned n);

__attribute__((noinline)) static int is_even(unsigned n)
{
    calls++;
    return n == 0 ? 1 : is_odd(n - 1) ? 1 : 0;
}

__attribute__((noinline)) static int is_odd(unsigned n)
{
    calls++;
    return n == 0 ? 0 : is_even(n - 1) ? 1 : 0;
}

/* ---- Hanoi and permutations ---- */

static uint64_t hanoi_hash;

__attribute__((noinline)) static void hanoi(int n, int from, int to, int via)
{
    if (n == 0)
        return;
    hanoi(n - 1, from, via, to);
    hanoi_hash = hanoi_hash * 31 + (uint64_t)(n * 9 + from * 3 + to);
    hanoi(n - 1, via, to, from);
}

static uint64_t perm_count, perm_hash;

__attribute__((noinline)) static void permute(char *s, int k, int n)
{
    if (k == n) {
        perm_count++;
        for (int i = 0; i < n; i++)
            perm_hash = perm_hash * 131 + (uint64_t)s[i];
        return;
    }
    for (int i = k; i < n; i++) {
        char t = s[k];
        s[k] = s[i];
        s[i] = t;
        permute(s, k + 1, n);
        t = s[k];
        s[k] = s[i];
        s[i] = t;
    }
}

int main(void)
{
    for (uint64_t n = 0; n <= 6; n += 3) {
        calls = 0;
        uint64_t a = ackermann(2, n);
        printf("ackermann(2, %llu) = %llu (%llu calls)\n", (unsigned long long)n,
               (unsigned long long)a, (unsigned long long)calls);
        check(a == 2 * n + 3, "A(2,n) = 2n+3");
    }
    for (uint64_t n = 2; n <= 8; n += 3) {
        calls = 0;
        uint64_t a = ackermann(3, n);
        printf("ackermann(3, %llu) = %llu (%llu calls)\n", (unsigned long long)n,
               (unsigned long long)a, (unsigned long long)calls);
        check(a == (1ull << (n + 3)) - 3, "A(3,n) = 2^(n+3)-3");
    }

    calls = 0;
    uint64_t f = fib(27);
    printf("fib(27) = %llu (%llu calls)\n", (unsigned long long)f, (unsigned long long)calls);
    check(f == 196418, "fib(27)");

    test_parser();

    uint64_t d = deep(100000, 1);
    printf("deep recursion: 100000 frames, result %016llx\n", (unsigned long long)d);
    calls = 0;
    int ev = is_even(50001);
    printf("mutual recursion: is_even(50001) = %d (%llu calls)\n", ev, (unsigned long long)calls);
    check(ev == 0, "is_even(50001)");

    hanoi(18, 0, 2, 1);
    printf("hanoi(18): %d moves, hash %016llx\n", (1 << 18) - 1, (unsigned long long)hanoi_hash);
    char letters[] = "abcdefgh";
    permute(letters, 0, 8);
    printf("permutations of 8: %llu, hash %016llx, string restored \"%s\"\n",
           (unsigned long long)perm_count, (unsigned long long)perm_hash, letters);
    check(perm_count == 40320, "8! permutations");

    printf("recursion: %s (%d failures)\n", failures ? "FAILED" : "all checks passed", failures);
    return failures ? 1 : 0;
}
