/*
 * fpcorner: the corner semantics of the RISC-V F and D extensions, printed as hex bits and
 * fflags so that every wrong bit shows.
 *
 *   1. rounding: fesetround to each of RNE/RTZ/RDN/RUP (and frm=RMM through fsrm), then
 *      dynamic-rounding instructions and compiled C; and every static rounding mode
 *      (rne/rtz/rdn/rup/rmm) encoded in fadd/fsub/fmul/fdiv/fsqrt/fcvt, on exact ties
 *   2. exception flags: fflags after each operation (NV DZ OF UF NX), read with frflags and
 *      with fetestexcept; flags are sticky; fcsr = frm << 5 | fflags; underflow uses
 *      tininess after rounding
 *   3. NaNs: results are the canonical NaN; sign injection and moves keep payloads;
 *      single-precision values must be NaN-boxed, an unboxed one reads as the canonical NaN
 *   4. fcvt saturation of NaN, infinities and out-of-range values to w/wu/l/lu
 *   5. fmin/fmax with -0/+0, quiet and signaling NaNs
 *   6. fused multiply-add rounds once (cases where fused differs from fmul + fadd)
 *   7. fclass of every class, single and double
 *   8. sqrt of negative numbers and of -0; comparisons with NaNs
 *
 * Every instruction under test is issued through inline assembly, so the compiler can
 * neither fold it nor choose another instruction. RISC-V only.
 */
#if !defined(__riscv) || __riscv_flen != 64
#error "fpcorner tests RISC-V F/D semantics and builds only for riscv64 with the D extension"
#endif

#include <fenv.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- bit views ---- */

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double dfrom(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float ffrom(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static const char *flagstr(unsigned long fl)
{
    /* five fixed slots so columns line up: NV DZ OF UF NX or '--' */
    static char buf[6][16];
    static int next;
    char *b = buf[next++ % 6];
    snprintf(b, 16, "%s %s %s %s %s", fl & 16 ? "NV" : "--", fl & 8 ? "DZ" : "--",
             fl & 4 ? "OF" : "--", fl & 2 ? "UF" : "--", fl & 1 ? "NX" : "--");
    return b;
}

/* ---- instruction wrappers: clear fflags, run one instruction, read fflags ---- */

#define DEF_D2(fn, insn, rm)                                                                   \
    static double fn(double a, double b, unsigned long *fl)                                    \
    {                                                                                          \
        double r;                                                                              \
        __asm__ volatile("fsflags zero\n\t" insn " %0, %2, %3" rm "\n\tfrflags %1"             \
                         : "=&f"(r), "=r"(*fl)                                                 \
                         : "f"(a), "f"(b));                                                    \
        return r;                                                                              \
    }
#define DEF_S2(fn, insn, rm)                                                                   \
    static float fn(float a, float b, unsigned long *fl)                                       \
    {                                                                                          \
        float r;                                                                               \
        __asm__ volatile("fsflags zero\n\t" insn " %0, %2, %3" rm "\n\tfrflags %1"             \
                         : "=&f"(r), "=r"(*fl)                                                 \
                         : "f"(a), "f"(b));                                                    \
        return r;                                                                              \
    }
#define DEF_D1(fn, insn, rm)                                                                   \
    static double fn(double a, unsigned long *fl)                                              \
    {                                                                                          \
        double r;                                                                              \
        __asm__ volatile("fsflags zero\n\t" insn " %0, %2" rm "\n\tfrflags %1"                 \
                         : "=&f"(r), "=r"(*fl)                                                 \
                         : "f"(a));                                                            \
        return r;                                                                              \
    }
#define DEF_D3(fn, insn)                                                                       \
    static double fn(double a, double b, double c, unsigned long *fl)                          \
    {                                                                                          \
        double r;                                                                              \
        __asm__ volatile("fsflags zero\n\t" insn " %0, %2, %3, %4\n\tfrflags %1"               \
                         : "=&f"(r), "=r"(*fl)                                                 \
                         : "f"(a), "f"(b), "f"(c));                                            \
        return r;                                                                              \
    }
#define DEF_S3(fn, insn)                                                                       \
    static float fn(float a, float b, float c, unsigned long *fl)                              \
    {                                                                                          \
        float r;                                                                               \
        __asm__ volatile("fsflags zero\n\t" insn " %0, %2, %3, %4\n\tfrflags %1"               \
                         : "=&f"(r), "=r"(*fl)                                                 \
                         : "f"(a), "f"(b), "f"(c));                                            \
        return r;                                                                              \
    }
/* float/double -> integer register (conversions, comparisons, fclass) */
#define DEF_TOI(fn, type, insn, rm)                                                            \
    static long fn(type a, unsigned long *fl)                                                  \
    {                                                                                          \
        long r;                                                                                \
        __asm__ volatile("fsflags zero\n\t" insn " %0, %2" rm "\n\tfrflags %1"                 \
                         : "=&r"(r), "=r"(*fl)                                                 \
                         : "f"(a));                                                            \
        return r;                                                                              \
    }
#define DEF_CMP(fn, type, insn)                                                                \
    static long fn(type a, type b, unsigned long *fl)                                          \
    {                                                                                          \
        long r;                                                                                \
        __asm__ volatile("fsflags zero\n\t" insn " %0, %2, %3\n\tfrflags %1"                   \
                         : "=&r"(r), "=r"(*fl)                                                 \
                         : "f"(a), "f"(b));                                                    \
        return r;                                                                              \
    }

DEF_D2(fadd_d_dyn, "fadd.d", "")
DEF_D2(fadd_d_rne, "fadd.d", ", rne")
DEF_D2(fadd_d_rtz, "fadd.d", ", rtz")
DEF_D2(fadd_d_rdn, "fadd.d", ", rdn")
DEF_D2(fadd_d_rup, "fadd.d", ", rup")
DEF_D2(fadd_d_rmm, "fadd.d", ", rmm")
DEF_D2(fsub_d_dyn, "fsub.d", "")
DEF_D2(fmul_d_dyn, "fmul.d", "")
DEF_D2(fmul_d_rmm, "fmul.d", ", rmm")
DEF_D2(fmul_d_rtz, "fmul.d", ", rtz")
DEF_D2(fdiv_d_dyn, "fdiv.d", "")
DEF_D2(fdiv_d_rne, "fdiv.d", ", rne")
DEF_D2(fdiv_d_rtz, "fdiv.d", ", rtz")
DEF_D2(fdiv_d_rdn, "fdiv.d", ", rdn")
DEF_D2(fdiv_d_rup, "fdiv.d", ", rup")
DEF_D2(fdiv_d_rmm, "fdiv.d", ", rmm")
DEF_D2(fmin_d, "fmin.d", "")
DEF_D2(fmax_d, "fmax.d", "")
DEF_D2(fsgnj_d, "fsgnj.d", "")
DEF_D2(fsgnjn_d, "fsgnjn.d", "")
DEF_D2(fsgnjx_d, "fsgnjx.d", "")
DEF_S2(fadd_s_dyn, "fadd.s", "")
DEF_S2(fadd_s_rne, "fadd.s", ", rne")
DEF_S2(fadd_s_rtz, "fadd.s", ", rtz")
DEF_S2(fadd_s_rdn, "fadd.s", ", rdn")
DEF_S2(fadd_s_rup, "fadd.s", ", rup")
DEF_S2(fadd_s_rmm, "fadd.s", ", rmm")
DEF_S2(fmul_s_dyn, "fmul.s", "")
DEF_S2(fdiv_s_dyn, "fdiv.s", "")
DEF_S2(fmin_s, "fmin.s", "")
DEF_S2(fmax_s, "fmax.s", "")
DEF_D1(fsqrt_d_dyn, "fsqrt.d", "")
DEF_D1(fsqrt_d_rtz, "fsqrt.d", ", rtz")
DEF_D1(fsqrt_d_rup, "fsqrt.d", ", rup")
DEF_D1(fsqrt_d_rmm, "fsqrt.d", ", rmm")
DEF_D3(fmadd_d, "fmadd.d")
DEF_D3(fmsub_d, "fmsub.d")
DEF_D3(fnmadd_d, "fnmadd.d")
DEF_D3(fnmsub_d, "fnmsub.d")
DEF_S3(fmadd_s, "fmadd.s")
DEF_S3(fnmsub_s, "fnmsub.s")
DEF_TOI(fcvt_w_d_dyn, double, "fcvt.w.d", "")
DEF_TOI(fcvt_w_d_rne, double, "fcvt.w.d", ", rne")
DEF_TOI(fcvt_w_d_rtz, double, "fcvt.w.d", ", rtz")
DEF_TOI(fcvt_w_d_rdn, double, "fcvt.w.d", ", rdn")
DEF_TOI(fcvt_w_d_rup, double, "fcvt.w.d", ", rup")
DEF_TOI(fcvt_w_d_rmm, double, "fcvt.w.d", ", rmm")
DEF_TOI(fcvt_wu_d, double, "fcvt.wu.d", ", rtz")
DEF_TOI(fcvt_l_d, double, "fcvt.l.d", ", rtz")
DEF_TOI(fcvt_lu_d, double, "fcvt.lu.d", ", rtz")
DEF_TOI(fcvt_w_s, float, "fcvt.w.s", ", rtz")
DEF_TOI(fcvt_wu_s, float, "fcvt.wu.s", ", rtz")
DEF_TOI(fcvt_l_s, float, "fcvt.l.s", ", rtz")
DEF_TOI(fcvt_lu_s, float, "fcvt.lu.s", ", rtz")
DEF_TOI(fcvt_wu_d_rdn, double, "fcvt.wu.d", ", rdn")
DEF_TOI(fcvt_l_s_rmm, float, "fcvt.l.s", ", rmm")
DEF_TOI(fclass_d, double, "fclass.d", "")
DEF_TOI(fclass_s, float, "fclass.s", "")
DEF_CMP(feq_d, double, "feq.d")
DEF_CMP(flt_d, double, "flt.d")
DEF_CMP(fle_d, double, "fle.d")
DEF_CMP(feq_s, float, "feq.s")
DEF_CMP(flt_s, float, "flt.s")

/* double -> float narrowing and int64 -> double, with a rounding mode */
#define DEF_NARROW(fn, rm)                                                                     \
    static float fn(double a, unsigned long *fl)                                               \
    {                                                                                          \
        float r;                                                                               \
        __asm__ volatile("fsflags zero\n\tfcvt.s.d %0, %2" rm "\n\tfrflags %1"                 \
                         : "=&f"(r), "=r"(*fl)                                                 \
                         : "f"(a));                                                            \
        return r;                                                                              \
    }
DEF_NARROW(fcvt_s_d_dyn, "")
DEF_NARROW(fcvt_s_d_rne, ", rne")
DEF_NARROW(fcvt_s_d_rtz, ", rtz")
DEF_NARROW(fcvt_s_d_rdn, ", rdn")
DEF_NARROW(fcvt_s_d_rup, ", rup")
DEF_NARROW(fcvt_s_d_rmm, ", rmm")

#define DEF_FROML(fn, rm)                                                                      \
    static double fn(long a, unsigned long *fl)                                                \
    {                                                                                          \
        double r;                                                                              \
        __asm__ volatile("fsflags zero\n\tfcvt.d.l %0, %2" rm "\n\tfrflags %1"                 \
                         : "=&f"(r), "=r"(*fl)                                                 \
                         : "r"(a));                                                            \
        return r;                                                                              \
    }
DEF_FROML(fcvt_d_l_dyn, "")
DEF_FROML(fcvt_d_l_rmm, ", rmm")

static double fcvt_d_s(float a, unsigned long *fl)
{
    double r;
    __asm__ volatile("fsflags zero\n\tfcvt.d.s %0, %2\n\tfrflags %1"
                     : "=&f"(r), "=r"(*fl)
                     : "f"(a));
    return r;
}

static unsigned long read_frm(void)
{
    unsigned long r;
    __asm__ volatile("frrm %0" : "=r"(r));
    return r;
}

static unsigned long read_fcsr(void)
{
    unsigned long r;
    __asm__ volatile("frcsr %0" : "=r"(r));
    return r;
}

/* ---- 1. rounding ---- */

static const char *const mode_names[] = {"RNE", "RTZ", "RDN", "RUP", "RMM"};

static void dynamic_rounding_row(const char *name)
{
    unsigned long fl;
    volatile double one = 1.0, three = 3.0, two = 2.0;
    double q = fdiv_d_dyn(one, three, &fl);
    double nq = fdiv_d_dyn(-one, three, &fl);
    double tie = fadd_d_dyn(one, dfrom(0x3CA0000000000000ull) /* 2^-53 */, &fl);
    double ntie = fadd_d_dyn(-one, dfrom(0xBCA0000000000000ull), &fl);
    double s = fsqrt_d_dyn(two, &fl);
    float fq = fdiv_s_dyn(1.0f, 3.0f, &fl);
    float narrow = fcvt_s_d_dyn(dfrom(0x3FF0000010000000ull) /* 1 + 2^-24, a float tie */, &fl);
    double big = fcvt_d_l_dyn((1L << 53) + 1, &fl);
    long w1 = fcvt_w_d_dyn(2.5, &fl), w2 = fcvt_w_d_dyn(-2.5, &fl), w3 = fcvt_w_d_dyn(3.5, &fl);
    long w4 = fcvt_w_d_dyn(-0.7, &fl);
    printf("  %s frm=%lu 1/3 %016llx -1/3 %016llx 1+2^-53 %016llx -1-2^-53 %016llx sqrt2 "
           "%016llx\n",
           name, read_frm(), (unsigned long long)dbits(q), (unsigned long long)dbits(nq),
           (unsigned long long)dbits(tie), (unsigned long long)dbits(ntie),
           (unsigned long long)dbits(s));
    printf("      1/3f %08x (float)(1+2^-24) %08x (double)(2^53+1) %016llx fcvt.w 2.5 %ld -2.5 "
           "%ld 3.5 %ld -0.7 %ld\n",
           fbits(fq), fbits(narrow), (unsigned long long)dbits(big), w1, w2, w3, w4);
    /* compiled C code under the same mode: the rint family (printed as integers) */
    volatile double h = 2.5, m = -2.5;
    printf("      C: rint(2.5) %ld rint(-2.5) %ld nearbyint(0.5) %ld lrint(-3.5) %ld\n",
           (long)rint(h), (long)rint(m), (long)nearbyint(h / 5), lrint(m - 1));
    /* glibc's printf rounds decimal output in the current mode too; it knows only the four
     * C99 modes and calls abort() under RMM, so it is skipped there */
    if (read_frm() != 4) {
        volatile double x = 2.0 / 3.0;
        printf("      printf: 2/3 = %.3f -2/3 = %.3f 2.5 = %.0f\n", x, -x, h);
    }
}

static void test_rounding(void)
{
    printf("1. rounding\n");
    printf(" dynamic rounding via fesetround (glibc) and fsrm\n");
    static const int modes[] = {FE_TONEAREST, FE_TOWARDZERO, FE_DOWNWARD, FE_UPWARD};
    for (int i = 0; i < 4; i++) {
        if (fesetround(modes[i]) != 0)
            printf("  fesetround(%s) failed\n", mode_names[i]);
        printf("  fegetround() == %s: %d\n", mode_names[i], fegetround() == modes[i]);
        dynamic_rounding_row(mode_names[i]);
    }
    /* glibc has no FE_ name for round-to-nearest-max-magnitude: set frm = 4 directly */
    __asm__ volatile("fsrmi 4");
    dynamic_rounding_row("RMM");
    fesetround(FE_TONEAREST);
    printf("  restored frm=%lu\n", read_frm());

    printf(" static rounding modes (frm stays RNE)\n");
    unsigned long fl;
    const double one = 1.0, e53 = dfrom(0x3CA0000000000000ull), e52x3 = 3 * e53;
    struct {
        const char *name;
        double (*add)(double, double, unsigned long *);
        double (*div)(double, double, unsigned long *);
        long (*cvt)(double, unsigned long *);
        float (*narrow)(double, unsigned long *);
        float (*adds)(float, float, unsigned long *);
    } st[] = {
        {"rne", fadd_d_rne, fdiv_d_rne, fcvt_w_d_rne, fcvt_s_d_rne, fadd_s_rne},
        {"rtz", fadd_d_rtz, fdiv_d_rtz, fcvt_w_d_rtz, fcvt_s_d_rtz, fadd_s_rtz},
        {"rdn", fadd_d_rdn, fdiv_d_rdn, fcvt_w_d_rdn, fcvt_s_d_rdn, fadd_s_rdn},
        {"rup", fadd_d_rup, fdiv_d_rup, fcvt_w_d_rup, fcvt_s_d_rup, fadd_s_rup},
        {"rmm", fadd_d_rmm, fdiv_d_rmm, fcvt_w_d_rmm, fcvt_s_d_rmm, fadd_s_rmm},
    };
    for (int i = 0; i < 5; i++) {
        double t1 = st[i].add(one, e53, &fl);
        double t2 = st[i].add(one, e52x3, &fl);
        double t3 = st[i].add(-one, -e53, &fl);
        double d1 = st[i].div(2.0, 3.0, &fl);
        double d2 = st[i].div(-2.0, 3.0, &fl);
        long c[6] = {st[i].cvt(0.5, &fl),  st[i].cvt(1.5, &fl),  st[i].cvt(2.5, &fl),
                     st[i].cvt(-0.5, &fl), st[i].cvt(-2.5, &fl), st[i].cvt(-2.6, &fl)};
        float n1 = st[i].narrow(dfrom(0x3FF0000010000000ull), &fl);  /* 1 + 2^-24 */
        float n2 = st[i].narrow(dfrom(0xBFF0000030000000ull), &fl);  /* -(1 + 3*2^-24) */
        float s1 = st[i].adds(1.0f, ffrom(0x33800000) /* 2^-24 */, &fl);
        float s2 = st[i].adds(ffrom(0x7F7FFFFF) /* FLT_MAX */, ffrom(0x7F7FFFFF), &fl);
        printf("  %s: 1+2^-53 %016llx 1+3*2^-53 %016llx -1-2^-53 %016llx 2/3 %016llx -2/3 "
               "%016llx\n",
               st[i].name, (unsigned long long)dbits(t1), (unsigned long long)dbits(t2),
               (unsigned long long)dbits(t3), (unsigned long long)dbits(d1),
               (unsigned long long)dbits(d2));
        printf("       fcvt.w 0.5 %ld 1.5 %ld 2.5 %ld -0.5 %ld -2.5 %ld -2.6 %ld; fcvt.s.d %08x "
               "%08x; fadd.s 1+2^-24 %08x max+max %08x\n",
               c[0], c[1], c[2], c[3], c[4], c[5], fbits(n1), fbits(n2), fbits(s1), fbits(s2));
    }
    double m = fmul_d_rmm(dfrom(0x3FF0000000000001ull), dfrom(0x3FF8000000000000ull), &fl);
    double sq_rtz = fsqrt_d_rtz(2.0, &fl), sq_rup = fsqrt_d_rup(2.0, &fl);
    double sq_rmm = fsqrt_d_rmm(2.0, &fl);
    double l_rmm = fcvt_d_l_rmm((1L << 54) + 2, &fl); /* tie between 2^54 and 2^54+4 */
    long ls = fcvt_l_s_rmm(-2.5f, &fl);
    printf("  rmm: (1+2^-52)*1.5 %016llx (2^54+2)->double %016llx fcvt.l.s(-2.5) %ld; sqrt2 "
           "rtz %016llx rup %016llx rmm %016llx\n",
           (unsigned long long)dbits(m), (unsigned long long)dbits(l_rmm), ls,
           (unsigned long long)dbits(sq_rtz), (unsigned long long)dbits(sq_rup),
           (unsigned long long)dbits(sq_rmm));
}

/* ---- 2. exception flags ---- */

static void show_flags(const char *what, unsigned long fl, uint64_t result)
{
    printf("  %-28s %s  result %016llx\n", what, flagstr(fl), (unsigned long long)result);
}

static const char *testexcept(void)
{
    static char buf[6][16];
    static int next;
    char *b = buf[next++ % 6];
    int e = fetestexcept(FE_ALL_EXCEPT);
    snprintf(b, 16, "%s %s %s %s %s", e & FE_INVALID ? "NV" : "--", e & FE_DIVBYZERO ? "DZ" : "--",
             e & FE_OVERFLOW ? "OF" : "--", e & FE_UNDERFLOW ? "UF" : "--",
             e & FE_INEXACT ? "NX" : "--");
    return b;
}

static void test_flags(void)
{
    printf("2. exception flags (NV DZ OF UF NX)\n");
    unsigned long fl;
    double r;
    const double qnan = dfrom(0x7FF8000000000000ull), snan = dfrom(0x7FF4000000000000ull);
    const double inf = dfrom(0x7FF0000000000000ull);
    r = fadd_d_dyn(1.0, 1.0, &fl);
    show_flags("1 + 1 (exact)", fl, dbits(r));
    r = fdiv_d_dyn(1.0, 3.0, &fl);
    show_flags("1 / 3", fl, dbits(r));
    r = fmul_d_dyn(1e308, 10.0, &fl);
    show_flags("1e308 * 10", fl, dbits(r));
    r = fmul_d_dyn(1e-308, 1e-10, &fl);
    show_flags("1e-308 * 1e-10 (subnormal)", fl, dbits(r));
    r = fmul_d_dyn(dfrom(0x0010000000000000ull), 0.5, &fl);
    show_flags("2^-1022 * 0.5 (exact subn.)", fl, dbits(r));
    r = fmul_d_dyn(1e-300, 1e-300, &fl);
    show_flags("1e-300 * 1e-300", fl, dbits(r));
    /* (1 - 2^-27) * 2^-1022 (1 + 2^-27) = 2^-1022 (1 - 2^-54): below the smallest normal,
     * but rounding to 53 bits gives 2^-1022 itself. RISC-V detects tininess after
     * rounding, so RNE raises only NX; RTZ rounds down to a subnormal: UF and NX. */
    const double tin_a = dfrom(0x3FEFFFFFFC000000ull), tin_b = dfrom(0x0010000002000000ull);
    r = fmul_d_dyn(tin_a, tin_b, &fl);
    show_flags("tiny only before rounding", fl, dbits(r));
    r = fmul_d_rtz(tin_a, tin_b, &fl);
    show_flags("  the same, rtz", fl, dbits(r));
    r = fdiv_d_dyn(1.0, 0.0, &fl);
    show_flags("1 / 0", fl, dbits(r));
    r = fdiv_d_dyn(-1.0, 0.0, &fl);
    show_flags("-1 / 0", fl, dbits(r));
    r = fdiv_d_dyn(0.0, 0.0, &fl);
    show_flags("0 / 0", fl, dbits(r));
    r = fdiv_d_dyn(inf, 0.0, &fl);
    show_flags("inf / 0", fl, dbits(r));
    r = fsub_d_dyn(inf, inf, &fl);
    show_flags("inf - inf", fl, dbits(r));
    r = fmul_d_dyn(inf, 0.0, &fl);
    show_flags("inf * 0", fl, dbits(r));
    r = fadd_d_dyn(qnan, 1.0, &fl);
    show_flags("qNaN + 1", fl, dbits(r));
    r = fadd_d_dyn(snan, 1.0, &fl);
    show_flags("sNaN + 1", fl, dbits(r));
    r = fsqrt_d_dyn(-1.0, &fl);
    show_flags("sqrt(-1)", fl, dbits(r));
    float f = fcvt_s_d_dyn(1e300, &fl);
    show_flags("(float)1e300", fl, fbits(f));
    f = fcvt_s_d_dyn(1e-300, &fl);
    show_flags("(float)1e-300", fl, fbits(f));
    f = fdiv_s_dyn(1.0f, 0.0f, &fl);
    show_flags("1f / 0f", fl, fbits(f));
    long i = fcvt_w_d_dyn(qnan, &fl);
    show_flags("fcvt.w.d(qNaN)", fl, (uint64_t)i);
    i = fcvt_w_d_dyn(2.5, &fl);
    show_flags("fcvt.w.d(2.5)", fl, (uint64_t)i);
    i = fcvt_w_d_dyn(3e9, &fl);
    show_flags("fcvt.w.d(3e9)", fl, (uint64_t)i);
    i = feq_d(qnan, qnan, &fl);
    show_flags("feq.d(qNaN, qNaN)", fl, (uint64_t)i);
    i = feq_d(snan, 1.0, &fl);
    show_flags("feq.d(sNaN, 1)", fl, (uint64_t)i);
    i = flt_d(qnan, 1.0, &fl);
    show_flags("flt.d(qNaN, 1)", fl, (uint64_t)i);
    i = fle_d(1.0, qnan, &fl);
    show_flags("fle.d(1, qNaN)", fl, (uint64_t)i);
    r = fmin_d(snan, 1.0, &fl);
    show_flags("fmin.d(sNaN, 1)", fl, dbits(r));
    r = fmin_d(qnan, 1.0, &fl);
    show_flags("fmin.d(qNaN, 1)", fl, dbits(r));

    /* the same conditions seen through the C99 interface */
    printf(" fetestexcept after C operations\n");
    volatile double big = 1e308, tiny = 1e-308, zero = 0.0, one = 1.0, three = 3.0, neg = -1.0;
    volatile double sink;
    feclearexcept(FE_ALL_EXCEPT);
    printf("  %-28s %s\n", "cleared", testexcept());
    sink = one / three;
    printf("  %-28s %s\n", "1.0 / 3.0", testexcept());
    feclearexcept(FE_ALL_EXCEPT);
    sink = big * big;
    printf("  %-28s %s\n", "1e308 * 1e308", testexcept());
    feclearexcept(FE_ALL_EXCEPT);
    sink = tiny * tiny;
    printf("  %-28s %s\n", "1e-308 * 1e-308", testexcept());
    feclearexcept(FE_ALL_EXCEPT);
    sink = one / zero;
    printf("  %-28s %s\n", "1.0 / 0.0", testexcept());
    feclearexcept(FE_ALL_EXCEPT);
    sink = sqrt(neg);
    printf("  %-28s %s\n", "sqrt(-1.0)", testexcept());
    /* flags are sticky: without clearing they accumulate */
    sink = one / three;
    sink = one / zero;
    printf("  %-28s %s\n", "sticky: + 1/3 + 1/0", testexcept());
    feraiseexcept(FE_OVERFLOW);
    printf("  %-28s %s\n", "feraiseexcept(FE_OVERFLOW)", testexcept());
    (void)sink;

    /* fcsr is frm << 5 | fflags */
    fesetround(FE_UPWARD);
    feclearexcept(FE_ALL_EXCEPT);
    feraiseexcept(FE_DIVBYZERO | FE_INEXACT);
    unsigned long fcsr = read_fcsr();
    fesetround(FE_TONEAREST);
    feclearexcept(FE_ALL_EXCEPT);
    printf("  fcsr with frm=RUP, flags DZ|NX: 0x%02lx; after reset 0x%02lx\n", fcsr, read_fcsr());
    unsigned long old;
    __asm__ volatile("fscsr %0, %1" : "=r"(old) : "r"(0xFFUL));
    unsigned long all = read_fcsr();
    __asm__ volatile("fscsr zero");
    printf("  fscsr 0xff reads back 0x%02lx (frm=%lu), previous 0x%02lx\n", all, all >> 5, old);
}

/* ---- 3. NaN propagation and NaN-boxing ---- */

static void test_nans(void)
{
    printf("3. NaNs\n");
    unsigned long fl;
    const double payload = dfrom(0x7FF8000000000123ull), spayload = dfrom(0xFFF4000000000456ull);
    const float fpayload = ffrom(0x7FC00123), fspayload = ffrom(0xFFA00456);
    printf("  fadd.d(qNaN payload, 1)   %016llx\n",
           (unsigned long long)dbits(fadd_d_dyn(payload, 1.0, &fl)));
    /* (each result is computed before its printf: argument evaluation order is
     * unspecified, and flagstr(fl) must see the flags of the operation on its line) */
    double sum = fadd_d_dyn(1.0, spayload, &fl);
    printf("  fadd.d(1, -sNaN payload)  %016llx %s\n", (unsigned long long)dbits(sum),
           flagstr(fl));
    printf("  fmul.d(-qNaN, -qNaN)      %016llx\n",
           (unsigned long long)dbits(fmul_d_dyn(dfrom(0xFFF8000000000001ull),
                                                dfrom(0xFFF8000000000002ull), &fl)));
    printf("  fsqrt.d(-qNaN payload)    %016llx\n",
           (unsigned long long)dbits(fsqrt_d_dyn(dfrom(0xFFF8000000000789ull), &fl)));
    printf("  fadd.s(qNaN payload, 1)   %08x\n", fbits(fadd_s_dyn(fpayload, 1.0f, &fl)));
    float prod = fmul_s_dyn(fspayload, 2.0f, &fl);
    printf("  fmul.s(-sNaN payload, 2)  %08x %s\n", fbits(prod), flagstr(fl));
    double widened = fcvt_d_s(fspayload, &fl);
    printf("  fcvt.d.s(-sNaN payload)   %016llx %s\n", (unsigned long long)dbits(widened),
           flagstr(fl));
    float narrowed = fcvt_s_d_dyn(spayload, &fl);
    printf("  fcvt.s.d(-sNaN payload)   %08x %s\n", fbits(narrowed), flagstr(fl));
    /* sign injection is not arithmetic: payloads and signalling bits survive, no flags */
    unsigned long f1, f2, f3;
    double j = fsgnj_d(spayload, -1.0, &f1), jn = fsgnjn_d(spayload, -1.0, &f2),
           jx = fsgnjx_d(spayload, -1.0, &f3);
    printf("  fsgnj.d(sNaN payload, -1) %016llx fsgnjn.d %016llx fsgnjx.d %016llx %s\n",
           (unsigned long long)dbits(j), (unsigned long long)dbits(jn),
           (unsigned long long)dbits(jx), flagstr(f1 | f2 | f3));

    /* NaN-boxing: a single in an f register has its upper 32 bits all ones */
    uint64_t boxed;
    __asm__ volatile("fmv.w.x ft0, %1\n\tfmv.x.d %0, ft0" : "=r"(boxed) : "r"(0x3F800000L) : "ft0");
    printf("  fmv.w.x(1.0f) as 64 bits  %016llx\n", (unsigned long long)boxed);
    uint64_t flw_box;
    static volatile float mem_f = 2.0f;
    __asm__ volatile("flw ft0, 0(%1)\n\tfmv.x.d %0, ft0" : "=r"(flw_box) : "r"(&mem_f) : "ft0");
    printf("  flw(2.0f) as 64 bits      %016llx\n", (unsigned long long)flw_box);
    uint64_t cvt_box;
    __asm__ volatile("fcvt.s.w ft0, %1\n\tfmv.x.d %0, ft0" : "=r"(cvt_box) : "r"(3L) : "ft0");
    printf("  fcvt.s.w(3) as 64 bits    %016llx\n", (unsigned long long)cvt_box);

    /* an improperly boxed single (upper bits not all ones) reads as the canonical NaN */
    static const uint64_t unboxed_patterns[] = {0x000000003F800000ull, 0xFFFFFFFE3F800000ull,
                                                0x7FFFFFFF3F800000ull};
    for (int k = 0; k < 3; k++) {
        uint64_t in = unboxed_patterns[k];
        long add_bits, sgnj_bits, xw, cls;
        uint64_t sgnj64;
        uint32_t stored;
        __asm__ volatile("fmv.d.x ft0, %5\n\t"
                         "fmv.w.x ft1, %6\n\t"
                         "fadd.s ft2, ft0, ft1\n\t"
                         "fmv.x.w %0, ft2\n\t"
                         "fsgnjn.s ft3, ft0, ft1\n\t" /* sign from 1.0f, negated */
                         "fmv.x.w %1, ft3\n\t"
                         "fmv.x.d %2, ft3\n\t"
                         "fmv.x.w %3, ft0\n\t"       /* moves the low 32 bits as they are */
                         "fclass.s %4, ft0\n\t"
                         "fsw ft0, 0(%7)"            /* stores the low 32 bits as they are */
                         : "=&r"(add_bits), "=&r"(sgnj_bits), "=&r"(sgnj64), "=&r"(xw),
                           "=&r"(cls)
                         : "r"(in), "r"(0x3F800000L), "r"(&stored)
                         : "ft0", "ft1", "ft2", "ft3", "memory");
        printf("  unboxed %016llx: fadd.s +1 %08x fsgnjn.s %08x (%016llx) fmv.x.w %08x "
               "fclass.s 0x%03lx fsw %08x\n",
               (unsigned long long)in, (uint32_t)add_bits, (uint32_t)sgnj_bits,
               (unsigned long long)sgnj64, (uint32_t)xw, cls, stored);
    }
    printf("  fmv.x.w sign-extends: %016llx\n", (unsigned long long)({
               long v;
               __asm__ volatile("fmv.w.x ft0, %1\n\tfmv.x.w %0, ft0"
                                : "=r"(v)
                                : "r"(0xBF800000L)
                                : "ft0");
               v;
           }));
}

/* ---- 4. conversion saturation ---- */

/* a conversion raises only NV (out of range or NaN) or NX (in range, not exact) */
static const char *cvtflags(unsigned long fl)
{
    return (fl & 16) ? "NV      " : (fl & 1) ? "      NX" : (fl ? "other!  " : "--      ");
}

static void test_saturation(void)
{
    printf("4. fcvt saturation (rtz)\n");
    static const uint64_t dvals[] = {
        0x7FF8000000000000ull, /* qNaN */
        0xFFF8000000000000ull, /* -qNaN */
        0x7FF4000000000000ull, /* sNaN */
        0x7FF0000000000000ull, /* +inf */
        0xFFF0000000000000ull, /* -inf */
        0x41E0000000000000ull, /* 2^31 */
        0xC1E0000000000000ull, /* -2^31 */
        0xC1E0000000200000ull, /* -2^31 - 1 */
        0x41DFFFFFFFFFFFFFull, /* just below 2^31 */
        0x41EFFFFFFFE00000ull, /* 2^32 - 1 */
        0x41F0000000000000ull, /* 2^32 */
        0x43E0000000000000ull, /* 2^63 */
        0xC3E0000000000000ull, /* -2^63 */
        0x43F0000000000000ull, /* 2^64 */
        0x444B1AE4D6E2EF50ull, /* 1e21 */
        0xBFF0000000000000ull, /* -1 */
        0xBFE0000000000000ull, /* -0.5 */
        0x8000000000000000ull, /* -0 */
        0x4004000000000000ull, /* 2.5 */
    };
    printf("  %-16s %-25s %-25s %-25s %-25s\n", "double", "fcvt.w.d", "fcvt.wu.d", "fcvt.l.d",
           "fcvt.lu.d");
    for (size_t k = 0; k < sizeof dvals / sizeof dvals[0]; k++) {
        double d = dfrom(dvals[k]);
        unsigned long f1, f2, f3, f4;
        long w = fcvt_w_d_rtz(d, &f1), wu = fcvt_wu_d(d, &f2), l = fcvt_l_d(d, &f3),
             lu = fcvt_lu_d(d, &f4);
        printf("  %016llx %016lx %s %016lx %s %016lx %s %016lx %s\n",
               (unsigned long long)dvals[k], (unsigned long)w, cvtflags(f1), (unsigned long)wu,
               cvtflags(f2), (unsigned long)l, cvtflags(f3), (unsigned long)lu, cvtflags(f4));
    }
    unsigned long fl;
    long r = fcvt_wu_d_rdn(-0.5, &fl);
    printf("  fcvt.wu.d(-0.5, rdn) = %ld %s (rounds to -1: out of range)\n", r, flagstr(fl));
    r = fcvt_wu_d(-0.5, &fl);
    printf("  fcvt.wu.d(-0.5, rtz) = %ld %s (rounds to 0: in range)\n", r, flagstr(fl));

    static const uint32_t svals[] = {0x7FC00000, 0xFF800000, 0x7F800000, 0x4F000000, 0xCF000000,
                                     0x4F800000, 0x5F000000, 0xDF000000, 0x5F800000, 0xBF800000,
                                     0x7FA00000};
    printf("  %-8s %-25s %-25s %-25s %-25s\n", "single", "fcvt.w.s", "fcvt.wu.s",
           "fcvt.l.s", "fcvt.lu.s");
    for (size_t k = 0; k < sizeof svals / sizeof svals[0]; k++) {
        float s = ffrom(svals[k]);
        unsigned long f1, f2, f3, f4;
        long w = fcvt_w_s(s, &f1), wu = fcvt_wu_s(s, &f2), l = fcvt_l_s(s, &f3),
             lu = fcvt_lu_s(s, &f4);
        printf("  %08x %016lx %s %016lx %s %016lx %s %016lx %s\n", svals[k], (unsigned long)w,
               cvtflags(f1), (unsigned long)wu, cvtflags(f2), (unsigned long)l, cvtflags(f3),
               (unsigned long)lu, cvtflags(f4));
    }
}

/* ---- 5. fmin / fmax ---- */

static void test_minmax(void)
{
    printf("5. fmin/fmax\n");
    static const uint64_t pairs[][2] = {
        {0x8000000000000000ull, 0x0000000000000000ull}, /* -0, +0 */
        {0x0000000000000000ull, 0x8000000000000000ull}, /* +0, -0 */
        {0x7FF8000000000000ull, 0x3FF0000000000000ull}, /* qNaN, 1 */
        {0x3FF0000000000000ull, 0x7FF8000000000000ull}, /* 1, qNaN */
        {0x7FF4000000000000ull, 0x3FF0000000000000ull}, /* sNaN, 1 */
        {0x3FF0000000000000ull, 0x7FF4000000000000ull}, /* 1, sNaN */
        {0x7FF8000000000123ull, 0xFFF8000000000456ull}, /* qNaN, -qNaN */
        {0x7FF4000000000000ull, 0x7FF8000000000000ull}, /* sNaN, qNaN */
        {0xFFF0000000000000ull, 0x7FF0000000000000ull}, /* -inf, inf */
        {0xBFF0000000000000ull, 0x8000000000000000ull}, /* -1, -0 */
    };
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        unsigned long f1, f2;
        double mn = fmin_d(dfrom(pairs[k][0]), dfrom(pairs[k][1]), &f1);
        double mx = fmax_d(dfrom(pairs[k][0]), dfrom(pairs[k][1]), &f2);
        printf("  d %016llx %016llx min %016llx %s max %016llx %s\n",
               (unsigned long long)pairs[k][0], (unsigned long long)pairs[k][1],
               (unsigned long long)dbits(mn), flagstr(f1), (unsigned long long)dbits(mx),
               flagstr(f2));
    }
    static const uint32_t spairs[][2] = {
        {0x80000000, 0x00000000}, {0x00000000, 0x80000000}, {0x7FC00000, 0xBF800000},
        {0x7FA00000, 0xBF800000}, {0x7FC00001, 0x7FA00000},
    };
    for (size_t k = 0; k < sizeof spairs / sizeof spairs[0]; k++) {
        unsigned long f1, f2;
        float mn = fmin_s(ffrom(spairs[k][0]), ffrom(spairs[k][1]), &f1);
        float mx = fmax_s(ffrom(spairs[k][0]), ffrom(spairs[k][1]), &f2);
        printf("  s %08x %08x min %08x %s max %08x %s\n", spairs[k][0], spairs[k][1], fbits(mn),
               flagstr(f1), fbits(mx), flagstr(f2));
    }
}

/* ---- 6. fused multiply-add ---- */

static void test_fma(void)
{
    printf("6. fused multiply-add rounds once\n");
    unsigned long fl, fl2;
    /* a = b = 1 + 2^-30: a*b = 1 + 2^-29 + 2^-60 exactly; the 2^-60 is lost when rounded */
    double a = dfrom(0x3FF0000000400000ull), c = -dfrom(0x3FF0000000800000ull);
    double fused = fmadd_d(a, a, c, &fl);
    double prod = fmul_d_dyn(a, a, &fl2);
    double split = fadd_d_dyn(prod, c, &fl2);
    printf("  fmadd.d(a,a,-(1+2^-29)) %016llx %s; fmul+fadd %016llx\n",
           (unsigned long long)dbits(fused), flagstr(fl), (unsigned long long)dbits(split));
    printf("  fmsub.d %016llx fnmadd.d %016llx fnmsub.d %016llx\n",
           (unsigned long long)dbits(fmsub_d(a, a, -c, &fl)),
           (unsigned long long)dbits(fnmadd_d(a, a, c, &fl)),
           (unsigned long long)dbits(fnmsub_d(a, a, -c, &fl)));
    /* 2^512 * 2^512 = 2^1024 overflows on its own; with the addend -2^1023 the fused
     * result is the finite 2^1023 */
    const double p512 = dfrom(0x5FF0000000000000ull), m1023 = dfrom(0xFFE0000000000000ull);
    double big = fmadd_d(p512, p512, m1023, &fl);
    double big_prod = fmul_d_dyn(p512, p512, &fl2);
    printf("  fmadd.d(2^512,2^512,-2^1023) %016llx %s; fmul.d alone %016llx %s\n",
           (unsigned long long)dbits(big), flagstr(fl), (unsigned long long)dbits(big_prod),
           flagstr(fl2));
    /* 0.1*10 - 1 is exactly 2^-54 when fused, 0 when rounded first */
    double t = fmsub_d(0.1, 10.0, 1.0, &fl);
    printf("  fmsub.d(0.1,10,1) %016llx %a\n", (unsigned long long)dbits(t), t);
    /* exact zero results: x + (-x) is +0 in every mode but RDN */
    printf("  fmadd.d(1,-1,1) %016llx fnmadd.d(1,1,-1) %016llx fmadd.d(-0,1,-0) %016llx\n",
           (unsigned long long)dbits(fmadd_d(1.0, -1.0, 1.0, &fl)),
           (unsigned long long)dbits(fnmadd_d(1.0, 1.0, -1.0, &fl)),
           (unsigned long long)dbits(fmadd_d(-0.0, 1.0, -0.0, &fl)));
    /* ...except that an exact zero sum of opposite signs is -0 when rounding down */
    fesetround(FE_DOWNWARD);
    double rdn_zero = fmadd_d(1.0, -1.0, 1.0, &fl);
    fesetround(FE_TONEAREST);
    printf("  fmadd.d(1,-1,1) under RDN %016llx\n", (unsigned long long)dbits(rdn_zero));
    /* inf * 0 + qNaN: the invalid product raises NV even though the addend is a NaN */
    double inv = fmadd_d(dfrom(0x7FF0000000000000ull), 0.0, dfrom(0x7FF8000000000000ull), &fl);
    printf("  fmadd.d(inf,0,qNaN) %016llx %s\n", (unsigned long long)dbits(inv), flagstr(fl));
    inv = fmadd_d(dfrom(0x7FF0000000000000ull), 1.0, dfrom(0xFFF0000000000000ull), &fl);
    printf("  fmadd.d(inf,1,-inf) %016llx %s\n", (unsigned long long)dbits(inv), flagstr(fl));

    float as = ffrom(0x3F800800) /* 1 + 2^-12 */, cs = -ffrom(0x3F801000) /* -(1 + 2^-11) */;
    float fs = fmadd_s(as, as, cs, &fl);
    float ps = fmul_s_dyn(as, as, &fl2);
    float ss = fadd_s_dyn(ps, cs, &fl2);
    unsigned long fl3;
    float ns = fnmsub_s(as, as, cs, &fl3);
    printf("  fmadd.s(a,a,-(1+2^-11)) %08x %s; fmul.s+fadd.s %08x; fnmsub.s %08x %s\n",
           fbits(fs), flagstr(fl), fbits(ss), fbits(ns), flagstr(fl3));
    /* the C library's fma() must agree with the instruction */
    printf("  libm fma(a,a,c) %016llx fmaf %08x\n", (unsigned long long)dbits(fma(a, a, c)),
           fbits(fmaf(as, as, cs)));
}

/* ---- 7. fclass ---- */

static void test_fclass(void)
{
    printf("7. fclass\n");
    static const struct {
        const char *name;
        uint64_t d;
        uint32_t s;
    } cls[] = {
        {"-inf", 0xFFF0000000000000ull, 0xFF800000},
        {"-normal", 0xBFF0000000000000ull, 0xBF800000},
        {"-subnormal", 0x800FFFFFFFFFFFFFull, 0x807FFFFF},
        {"-0", 0x8000000000000000ull, 0x80000000},
        {"+0", 0x0000000000000000ull, 0x00000000},
        {"+subnormal", 0x0000000000000001ull, 0x00000001},
        {"+normal", 0x7FEFFFFFFFFFFFFFull, 0x7F7FFFFF},
        {"+inf", 0x7FF0000000000000ull, 0x7F800000},
        {"sNaN", 0x7FF0000000000001ull, 0x7F800001},
        {"qNaN", 0x7FF8000000000000ull, 0x7FC00000},
        {"-sNaN", 0xFFF4000000000000ull, 0xFFA00000},
        {"-qNaN", 0xFFFFFFFFFFFFFFFFull, 0xFFFFFFFF},
    };
    for (size_t k = 0; k < sizeof cls / sizeof cls[0]; k++) {
        unsigned long fl;
        long cd = fclass_d(dfrom(cls[k].d), &fl);
        long cs = fclass_s(ffrom(cls[k].s), &fl);
        printf("  %-11s d %016llx -> 0x%03lx  s %08x -> 0x%03lx\n", cls[k].name,
               (unsigned long long)cls[k].d, cd, cls[k].s, cs);
    }
}

/* ---- 8. sqrt and comparisons ---- */

static void test_sqrt_cmp(void)
{
    printf("8. sqrt and comparisons\n");
    static const uint64_t svals[] = {0xBFF0000000000000ull, 0x8000000000000000ull,
                                     0x0000000000000000ull, 0xFFF0000000000000ull,
                                     0x7FF0000000000000ull, 0x8000000000000001ull,
                                     0x0000000000000001ull, 0x4000000000000000ull};
    for (size_t k = 0; k < sizeof svals / sizeof svals[0]; k++) {
        unsigned long fl;
        double r = fsqrt_d_dyn(dfrom(svals[k]), &fl);
        printf("  fsqrt.d(%016llx) = %016llx %s\n", (unsigned long long)svals[k],
               (unsigned long long)dbits(r), flagstr(fl));
    }
    unsigned long fl;
    float r = ffrom(0);
    __asm__ volatile("fsflags zero\n\tfsqrt.s %0, %2\n\tfrflags %1"
                     : "=&f"(r), "=r"(fl)
                     : "f"(-4.0f));
    printf("  fsqrt.s(-4) = %08x %s\n", fbits(r), flagstr(fl));
    printf("  feq.s(-0,+0) %ld flt.s(-0,+0) %ld feq.d(-0,+0) %ld fle.d(-0,+0) %ld flt.d(-inf,inf) "
           "%ld\n",
           feq_s(-0.0f, 0.0f, &fl), flt_s(-0.0f, 0.0f, &fl), feq_d(-0.0, 0.0, &fl),
           fle_d(-0.0, 0.0, &fl), flt_d(-HUGE_VAL, HUGE_VAL, &fl));
    long eq = feq_s(ffrom(0x7FA00000), 1.0f, &fl);
    printf("  feq.s(sNaN, 1) %ld %s\n", eq, flagstr(fl));
}

int main(void)
{
    test_rounding();
    test_flags();
    test_nans();
    test_saturation();
    test_minmax();
    test_fma();
    test_fclass();
    test_sqrt_cmp();
    printf("fpcorner: done\n");
    return 0;
}
