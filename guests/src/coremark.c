/*
 * coremark: a CoreMark-like workload (written for vmjit, not EEMBC's code): the same four
 * kernels in the same proportions, with a fixed iteration count instead of a timer so the
 * output is deterministic.
 *
 *   - list:   a linked list of (value, index) records living in a fixed pool; each
 *             iteration finds values, reverses the list, merge-sorts it by value and back
 *             by index, and folds the visited data into a CRC
 *   - matrix: N x N int16 matrices: add a constant, multiply by a constant, by a vector,
 *             by a matrix, and a bit-extracting matrix product; CRC over the results
 *   - state:  a character-level state machine that classifies comma-separated tokens
 *             (integer, float, scientific, hex, invalid), over an input it mutates each
 *             iteration
 *   - crc:    CRC-16/CCITT (bitwise, as CoreMark does) chaining every result
 *
 * The iteration count (ITERATIONS) was chosen so that one run takes about one second
 * under qemu-riscv64 on the development machine; see guests/README.md for the
 * measurement. Each iteration's seed depends on the previous CRC, so no iteration can be
 * skipped or reordered.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifndef ITERATIONS
#define ITERATIONS 6400
#endif

/* ---- CRC-16/CCITT, bit at a time ---- */

static uint16_t crc16_byte(uint8_t data, uint16_t crc)
{
    for (int i = 0; i < 8; i++) {
        uint16_t mix = (uint16_t)(((crc >> 15) ^ (data >> 7)) & 1);
        data = (uint8_t)(data << 1);
        crc = (uint16_t)(crc << 1);
        if (mix)
            crc ^= 0x1021;
    }
    return crc;
}

static uint16_t crc16_u16(uint16_t v, uint16_t crc)
{
    crc = crc16_byte((uint8_t)(v >> 8), crc);
    return crc16_byte((uint8_t)v, crc);
}

static uint16_t crc16_u32(uint32_t v, uint16_t crc)
{
    crc = crc16_u16((uint16_t)(v >> 16), crc);
    return crc16_u16((uint16_t)v, crc);
}

/* ---- list kernel ---- */

#define LIST_N 96

struct item {
    int16_t value;
    int16_t index;
};

struct node {
    struct node *next;
    struct item *data;
};

static struct node node_pool[LIST_N];
static struct item item_pool[LIST_N];

static struct node *list_init(uint16_t seed)
{
    for (int i = 0; i < LIST_N; i++) {
        node_pool[i].next = i + 1 < LIST_N ? &node_pool[i + 1] : NULL;
        node_pool[i].data = &item_pool[i];
        uint16_t x = (uint16_t)((seed ^ (uint16_t)(i * 0x9E37)) * 25173u + 13849u);
        item_pool[i].value = (int16_t)(x & 0x7FFF);
        item_pool[i].index = (int16_t)i;
    }
    return &node_pool[0];
}

static struct node *list_reverse(struct node *head)
{
    struct node *prev = NULL;
    while (head) {
        struct node *next = head->next;
        head->next = prev;
        prev = head;
        head = next;
    }
    return prev;
}

static struct node *list_find(struct node *head, int16_t value, int by_index)
{
    for (; head; head = head->next)
        if ((by_index ? head->data->index : head->data->value) == value)
            return head;
    return NULL;
}

static int cmp_value(const struct item *a, const struct item *b)
{
    return a->value - b->value;
}

static int cmp_index(const struct item *a, const struct item *b)
{
    return a->index - b->index;
}

/* bottom-up merge sort of a singly linked list (stable, no recursion) */
static struct node *list_sort(struct node *list, int (*cmp)(const struct item *,
                                                           const struct item *))
{
    for (int insize = 1;; insize *= 2) {
        struct node *p = list, *tail = NULL;
        list = NULL;
        int merges = 0;
        while (p) {
            merges++;
            struct node *q = p;
            int psize = 0;
            for (int i = 0; i < insize && q; i++) {
                psize++;
                q = q->next;
            }
            int qsize = insize;
            while (psize > 0 || (qsize > 0 && q)) {
                struct node *e;
                if (psize == 0) {
                    e = q;
                    q = q->next;
                    qsize--;
                } else if (qsize == 0 || !q || cmp(p->data, q->data) <= 0) {
                    e = p;
                    p = p->next;
                    psize--;
                } else {
                    e = q;
                    q = q->next;
                    qsize--;
                }
                if (tail)
                    tail->next = e;
                else
                    list = e;
                tail = e;
            }
            p = q;
        }
        tail->next = NULL;
        if (merges <= 1)
            return list;
    }
}

static uint16_t list_kernel(uint16_t seed, uint16_t crc)
{
    struct node *head = list_init(seed);
    int found = 0, missed = 0;
    for (int i = 0; i < 16; i++) {
        int16_t want = item_pool[(seed + i * 7) % LIST_N].value;
        struct node *n = list_find(head, (int16_t)(want + (i & 1)), 0);
        if (n) {
            found++;
            crc = crc16_u16((uint16_t)n->data->index, crc);
        } else {
            missed++;
        }
        head = list_reverse(head);
    }
    head = list_sort(head, cmp_value);
    for (struct node *n = head; n; n = n->next)
        crc = crc16_u16((uint16_t)n->data->value, crc);
    /* modify some items through the sorted order, then restore index order */
    int k = 0;
    for (struct node *n = head; n; n = n->next, k++)
        if (k % 5 == 0)
            n->data->value = (int16_t)(n->data->value ^ 0x5A5A);
    head = list_sort(head, cmp_index);
    for (struct node *n = head; n; n = n->next)
        crc = crc16_u16((uint16_t)(n->data->value + n->data->index), crc);
    struct node *mid = list_find(head, LIST_N / 2, 1);
    crc = crc16_u16((uint16_t)(found * 256 + missed + (mid ? mid->data->value : 0)), crc);
    return crc;
}

/* ---- matrix kernel ---- */

#define MAT_N 24

static int16_t mat_a[MAT_N][MAT_N], mat_b[MAT_N][MAT_N];
static int32_t mat_c[MAT_N][MAT_N];
static int32_t vec_out[MAT_N];

static uint16_t matrix_crc(uint16_t crc)
{
    int32_t sum = 0;
    for (int i = 0; i < MAT_N; i++)
        for (int j = 0; j < MAT_N; j++) {
            sum += mat_c[i][j];
            /* like CoreMark: fold a data-dependent bit pattern, not every value */
            if (sum > 0x7FFF0000 || sum < -0x7FFF0000)
                sum >>= 4;
        }
    return crc16_u32((uint32_t)sum, crc);
}

static uint16_t matrix_kernel(uint16_t seed, uint16_t crc)
{
    int16_t v = (int16_t)(seed | 1);
    for (int i = 0; i < MAT_N; i++)
        for (int j = 0; j < MAT_N; j++) {
            v = (int16_t)((v * 75 + 74) % 65537);
            mat_a[i][j] = (int16_t)(v & 0x0FFF);
            mat_b[i][j] = (int16_t)((v >> 3) & 0x00FF) - 64;
        }
    int16_t k = (int16_t)((seed & 0xF) + 3);
    /* add constant */
    for (int i = 0; i < MAT_N; i++)
        for (int j = 0; j < MAT_N; j++)
            mat_a[i][j] = (int16_t)(mat_a[i][j] + k);
    /* multiply by constant */
    for (int i = 0; i < MAT_N; i++)
        for (int j = 0; j < MAT_N; j++)
            mat_c[i][j] = (int32_t)mat_a[i][j] * k;
    crc = matrix_crc(crc);
    /* matrix * vector (first column of B as the vector) */
    for (int i = 0; i < MAT_N; i++) {
        int32_t s = 0;
        for (int j = 0; j < MAT_N; j++)
            s += (int32_t)mat_a[i][j] * mat_b[j][0];
        vec_out[i] = s;
    }
    for (int i = 0; i < MAT_N; i++)
        crc = crc16_u32((uint32_t)vec_out[i], crc);
    /* matrix * matrix */
    for (int i = 0; i < MAT_N; i++)
        for (int j = 0; j < MAT_N; j++) {
            int32_t s = 0;
            for (int m = 0; m < MAT_N; m++)
                s += (int32_t)mat_a[i][m] * mat_b[m][j];
            mat_c[i][j] = s;
        }
    crc = matrix_crc(crc);
    /* matrix * matrix on extracted bit fields */
    for (int i = 0; i < MAT_N; i++)
        for (int j = 0; j < MAT_N; j++) {
            int32_t s = 0;
            for (int m = 0; m < MAT_N; m++) {
                int32_t t = (int32_t)mat_a[i][m] * mat_b[m][j];
                s += ((t >> 2) & 0xF) * ((t >> 5) & 0x7F);
            }
            mat_c[i][j] = s;
        }
    crc = matrix_crc(crc);
    return crc;
}

/* ---- state machine kernel ---- */

enum state { S_START, S_INT, S_FLOAT, S_EXP, S_EXP_SIGN, S_SCI, S_HEX0, S_HEX, S_INVALID,
             S_COUNT };

static const char *const token_pool[] = {
    "5012", "1234", "-874", "+122", "35.54", ".1234", "-110.700", "+0.64400", "5.500e+3",
    "-.123e-2", "-87e+832", "+0.6e-12", "T0.3e-1F", "-T.T++Tq", "1T3.4e4z", "34.0e-T^",
    "0x1F", "0xbeef", "0x", "12e", "-", "+.e3",
};

#define STATE_INPUT 800

static char state_input[STATE_INPUT + 1];

static void state_fill(uint16_t seed)
{
    size_t pos = 0;
    unsigned i = seed;
    const size_t ntok = sizeof token_pool / sizeof token_pool[0];
    while (1) {
        const char *t = token_pool[i++ % ntok];
        size_t len = strlen(t);
        if (pos + len + 1 > STATE_INPUT)
            break;
        memcpy(state_input + pos, t, len);
        pos += len;
        state_input[pos++] = ',';
    }
    state_input[pos] = '\0';
}

static enum state next_state(enum state s, char c)
{
    int digit = c >= '0' && c <= '9';
    switch (s) {
    case S_START:
        if (c == '0')
            return S_HEX0;
        if (digit)
            return S_INT;
        if (c == '+' || c == '-')
            return S_INT; /* sign: must be followed by digits, checked at the end */
        if (c == '.')
            return S_FLOAT;
        return S_INVALID;
    case S_INT:
        if (digit)
            return S_INT;
        if (c == '.')
            return S_FLOAT;
        if (c == 'e' || c == 'E')
            return S_EXP;
        return S_INVALID;
    case S_FLOAT:
        if (digit)
            return S_FLOAT;
        if (c == 'e' || c == 'E')
            return S_EXP;
        return S_INVALID;
    case S_EXP:
        if (c == '+' || c == '-')
            return S_EXP_SIGN;
        if (digit)
            return S_SCI;
        return S_INVALID;
    case S_EXP_SIGN:
    case S_SCI:
        return digit ? S_SCI : S_INVALID;
    case S_HEX0:
        if (c == 'x' || c == 'X')
            return S_HEX;
        if (digit)
            return S_INT;
        if (c == '.')
            return S_FLOAT;
        return S_INVALID;
    case S_HEX:
        if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            return S_HEX;
        return S_INVALID;
    default:
        return S_INVALID;
    }
}

static uint16_t state_kernel(uint16_t seed, uint16_t crc)
{
    state_fill(seed);
    unsigned final_counts[S_COUNT] = {0}, transitions[S_COUNT] = {0};
    for (int pass = 0; pass < 2; pass++) {
        const char *p = state_input;
        while (*p) {
            enum state s = S_START;
            int ndigits = 0;
            for (; *p && *p != ','; p++) {
                enum state n = next_state(s, *p);
                if (n != s)
                    transitions[n]++;
                ndigits += *p >= '0' && *p <= '9';
                s = n;
            }
            if (*p == ',')
                p++;
            /* a lone sign or an exponent without digits is not a number */
            if ((s == S_INT || s == S_FLOAT) && ndigits == 0)
                s = S_INVALID;
            if (s == S_EXP || s == S_EXP_SIGN)
                s = S_INVALID;
            final_counts[s]++;
        }
        /* corrupt every 7th character (seed-dependent) and scan again */
        for (size_t i = seed % 7; i < STATE_INPUT && state_input[i]; i += 7)
            if (state_input[i] != ',')
                state_input[i] = (char)(state_input[i] ^ 0x01);
    }
    for (int s = 0; s < S_COUNT; s++) {
        crc = crc16_u16((uint16_t)final_counts[s], crc);
        crc = crc16_u16((uint16_t)transitions[s], crc);
    }
    return crc;
}

int main(void)
{
    uint16_t seed = 0x3415;
    uint16_t crc_list = 0, crc_matrix = 0, crc_state = 0, crc_total = 0;
    for (int it = 0; it < ITERATIONS; it++) {
        crc_list = list_kernel(seed, crc_list);
        crc_matrix = matrix_kernel((uint16_t)(seed ^ crc_list), crc_matrix);
        crc_state = state_kernel((uint16_t)(seed + crc_matrix), crc_state);
        crc_total = crc16_u16(crc_list, crc_total);
        crc_total = crc16_u16(crc_matrix, crc_total);
        crc_total = crc16_u16(crc_state, crc_total);
        seed = (uint16_t)(seed * 0x9E37 + crc_total);
        if (it == 0)
            printf("iteration 0: crc list 0x%04x matrix 0x%04x state 0x%04x\n", crc_list,
                   crc_matrix, crc_state);
        if ((it + 1) % (ITERATIONS / 4) == 0)
            printf("after %d iterations: crc 0x%04x\n", it + 1, crc_total);
    }
    printf("coremark-like: %d iterations (list %d nodes, matrix %dx%d, state input %d bytes)\n",
           ITERATIONS, LIST_N, MAT_N, MAT_N, STATE_INPUT);
    printf("crc list   0x%04x\n", crc_list);
    printf("crc matrix 0x%04x\n", crc_matrix);
    printf("crc state  0x%04x\n", crc_state);
    printf("crc final  0x%04x\n", crc_total);
    return 0;
}
