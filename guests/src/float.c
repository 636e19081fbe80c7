/*
 * float: floating-point arithmetic as ordinary C code uses it.
 *
 *   - printf with %f, %e, %g and %a of computed float and double values (glibc's printf
 *     converts exactly, so any wrong low bit shows in the %a column)
 *   - libm: sin, cos, tan, atan2, exp, log, log2, log10, pow, sqrt, cbrt, hypot, fmod,
 *     floor, ceil, round, trunc, lrint, llround, frexp/ldexp, modf
 *   - float (single) and double arithmetic, fused-looking expressions, comparisons
 *   - conversions between int32/int64/uint64/float/double in both directions
 *   - numerical methods: Simpson integration, Newton's method, a Horner polynomial,
 *     Kahan summation, a small Gaussian elimination, a Mandelbrot membership count
 *
 * GCC contracts a*b+c into fmadd/fmsub on RISC-V (-ffp-contract=fast is the GNU C default),
 * so some low bits differ from an x86-64 build; that is intended: it exercises the fused
 * instructions. The results are printed; self-checks compare against known values with a tolerance and
 * set the exit code to 1 if one fails.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int failures;

static void check_close(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol)) {
        failures++;
        printf("FAIL: %s: got %.17g want %.17g\n", what, got, want);
    }
}

/* Values the compiler cannot fold: every computation below happens at run time. */
static volatile double vd[] = {0.1, 2.5, -3.75, 1e300, 1e-300, 123456.789, -0.0, 3.0};
static volatile float vf[] = {0.1f, 2.5f, -3.75f, 1e30f, 1e-30f, 123456.789f, -0.0f, 3.0f};

static void show(const char *name, double x)
{
    printf("%-16s %%f=%f %%e=%e %%g=%g %%a=%a\n", name, x, x, x, x);
}

static void test_printf(void)
{
    double third = vd[7] / 9.0; /* 1/3 */
    show("1/3", third);
    show("0.1*3", vd[0] * 3);
    show("2.5^10", pow(vd[1], 10));
    show("-3.75/7", vd[2] / 7);
    show("1e300*10", vd[3] * 10);
    show("1e-300/1e10", vd[4] / 1e10);
    show("1e-300/1e20", vd[4] / 1e20); /* subnormal */
    show("-0.0", vd[6]);
    show("123456.789", vd[5]);
    show("1e300*1e300", vd[3] * vd[3]); /* inf */
    show("-1e300*1e300", -vd[3] * vd[3]);
    printf("precision: %.0f %.1f %.10f %.20e %.3g %#g %+f % f %12.4f|%-12.4f|\n", third, third,
           third, third, third, third, third, third, third, third);
    printf("rounding in printf: %.0f %.0f %.0f %.0f %.2f %.2f\n", 0.5, 1.5, 2.5, -0.5, 2.675,
           1.005);
    float f = vf[0] * vf[7];
    uint32_t fbits;
    memcpy(&fbits, &f, sizeof fbits);
    printf("float 0.1f*3: %f %e %g %a (as float bits %08x)\n", f, f, f, f, fbits);
    float g = vf[3] * vf[3];
    float h = vf[4] * vf[4];
    printf("float overflow %f, underflow %g %a\n", g, h, h);
    double nan = sqrt(vd[2]);
    printf("sqrt(-3.75) is nan: %d, signbit-independent print: %s\n", isnan(nan) ? 1 : 0,
           isnan(nan) ? "nan" : "number");
}

static void test_libm(void)
{
    static const double xs[] = {0.0, 0.5, 1.0, 2.0, 3.14159265358979, -1.25, 10.0, 100.5};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        double x = xs[i] * (vd[7] / 3.0);
        printf("x=%-8g sin %.15e cos %.15e tan %.15e exp %.15e atan2(x,1.5) %.15e\n", x, sin(x),
               cos(x), tan(x), exp(x), atan2(x, 1.5));
        if (x > 0)
            printf("           log %.15e log2 %.15e log10 %.15e sqrt %.17g cbrt %.15e\n", log(x),
                   log2(x), log10(x), sqrt(x), cbrt(x));
    }
    printf("pow: 2^0.5 %.17g 10^-3 %.17g (-2)^3 %.17g 1.0001^10000 %.15e 0^0 %g\n",
           pow(2, vd[0] * 5), pow(10, -vd[7]), pow(-2, vd[7]), pow(1.0001, 10000 * vd[7] / 3),
           pow(0, vd[6]));
    printf("hypot(3,4) %.17g fmod(10.5,3) %.17g fmod(-10.5,3) %.17g remainder(10.5,3) %.17g\n",
           hypot(vd[7], 4), fmod(10.5 * vd[7] / 3, 3), fmod(-10.5 * vd[7] / 3, 3),
           remainder(10.5 * vd[7] / 3, 3));

    static const double rs[] = {2.5, 3.5, -2.5, -3.5, 2.4999, -0.5, 0.49999999999999994, 1e16 + 1,
                                -7.75};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        double r = rs[i] * (vd[7] / 3.0);
        printf("round %-22.17g floor %g ceil %g round %g trunc %g lrint %ld llround %lld "
               "nearbyint %g\n",
               r, floor(r), ceil(r), round(r), trunc(r), lrint(r), llround(r), nearbyint(r));
    }
    int e;
    double m = frexp(vd[5], &e);
    double ip;
    double fp = modf(vd[2], &ip);
    printf("frexp(123456.789) = %.17g * 2^%d, ldexp back %.17g; modf(-3.75) = %g + %g\n", m, e,
           ldexp(m, e), ip, fp);
    float sf = sinf(vf[1]), ef = expf(vf[1]), lf = logf(vf[5]), pf = powf(vf[1], 3.5f);
    printf("single: sinf(2.5) %.9g expf(2.5) %.9g logf(123456.789) %.9g powf(2.5,3.5) %.9g "
           "sqrtf(2) %.9g\n",
           sf, ef, lf, pf, sqrtf(2.0f * vf[7] / 3.0f));

    check_close(sin(vd[7] / 18.0 * 3.14159265358979323846), 0.5, 1e-15, "sin(pi/6)");
    check_close(exp(log(vd[5])), 123456.789, 1e-9, "exp(log(x))");
    check_close(pow(2, vd[0] * 5), 1.4142135623730951, 1e-16, "pow(2, 0.5)");
}

static void test_arith(void)
{
    /* double: a chain whose every intermediate rounding affects the result */
    double acc = 1.0;
    float accf = 1.0f;
    for (int i = 1; i <= 1000; i++) {
        acc = acc * 1.0000001 + vd[0] / i - (acc > 2 ? 1.5 : 0.0);
        accf = accf * 1.0001f + vf[0] / (float)i - (accf > 2 ? 1.5f : 0.0f);
    }
    printf("chain: double %a (%.17g) float %a (%.9g)\n", acc, acc, (double)accf, accf);

    /* comparisons, including with NaN and signed zeros */
    double nan = vd[6] / vd[6]; /* -0/-0 */
    printf("compare: nan==nan %d nan<1 %d nan!=nan %d -0==0 %d 1/-0<0 %d isinf %d isnan %d "
           "signbit(-0) %d\n",
           nan == nan, nan < 1, nan != nan, vd[6] == 0.0, 1 / vd[6] < 0, isinf(vd[3] * 10),
           isnan(nan), signbit(vd[6]) != 0);
    printf("min/max: fmin(-0,0) signbit %d fmax(nan,2) %g fmin(2,nan) %g fmaf %a fma %a\n",
           signbit(fmin(vd[6], 0.0)) != 0, fmax(nan, 2.0), fmin(2.0, nan),
           (double)fmaf(vf[0], vf[7], -0.3f), fma(vd[0], vd[7], -0.3));
    printf("copysign(3,-0) %g fabs(-3.75) %g fdim(5,3) %g\n", copysign(vd[7], vd[6]), fabs(vd[2]),
           fdim(5 * vd[7] / 3, 3));
}

static void test_conversions(void)
{
    static const double ds[] = {0.0, 1.9, -1.9, 2147483647.5, -2147483648.9, 4294967295.0,
                                9007199254740993.0, 1e18, -1e18, 18446744073709549568.0};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        double d = ds[i] * (vd[7] / 3.0);
        int32_t i32 = (d > -2147483649.0 && d < 2147483648.0) ? (int32_t)d : 0;
        int64_t i64 = (d > -9.3e18 && d < 9.2e18) ? (int64_t)d : 0;
        uint64_t u64 = (d >= 0 && d < 1.8e19) ? (uint64_t)d : 0;
        float f = (float)d;
        printf("conv: %-24.17g -> i32 %-12d i64 %-20lld u64 %-20llu float %a back %.17g\n", d,
               i32, (long long)i64, (unsigned long long)u64, (double)f, (double)f);
    }
    static const int64_t is[] = {0, 1, -1, 16777217, 9007199254740993LL, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof is / sizeof is[0]; i++) {
        volatile int64_t v = is[i];
        volatile uint64_t u = (uint64_t)is[i];
        printf("conv: int %lld -> double %a float %a; as unsigned -> double %a float %a\n",
               (long long)v, (double)v, (double)(float)v, (double)u, (double)(float)u);
    }
    volatile int32_t w = -123456789;
    volatile uint32_t uw = 4000000000u;
    printf("conv: int32 %d -> float %a double %a; uint32 %u -> float %a double %a\n", w,
           (double)(float)w, (double)w, uw, (double)(float)uw, (double)uw);
}

/* ---- numerical methods ---- */

static double f_integrand(double x) { return exp(-x * x) * cos(3 * x); }

static double simpson(double (*f)(double), double a, double b, int n)
{
    double h = (b - a) / n, s = f(a) + f(b);
    for (int i = 1; i < n; i++)
        s += f(a + i * h) * (i % 2 ? 4 : 2);
    return s * h / 3;
}

static double newton_sqrt(double a, int *iters)
{
    double x = a > 1 ? a : 1;
    for (*iters = 0; *iters < 100; (*iters)++) {
        double next = 0.5 * (x + a / x);
        if (next == x)
            break;
        x = next;
    }
    return x;
}

static double newton_cubic_root(void)
{
    /* the real root of x^3 - 2x - 5 (Newton's own example) */
    double x = 2;
    for (int i = 0; i < 50; i++)
        x -= (x * x * x - 2 * x - 5) / (3 * x * x - 2);
    return x;
}

static void test_methods(void)
{
    double s4 = simpson(sin, 0, 3.14159265358979323846 * vd[7] / 3, 4);
    double s1000 = simpson(sin, 0, 3.14159265358979323846 * vd[7] / 3, 1000);
    double g = simpson(f_integrand, -5, 5, 2000);
    printf("simpson: int_0^pi sin = %.17g (n=4), %.17g (n=1000); int exp(-x^2)cos(3x) = %.17g\n",
           s4, s1000, g);
    /* over the whole line: sqrt(pi) * exp(-9/4); the tails beyond +-5 and Simpson's error
     * with h = 0.005 together stay below 1e-10 */
    check_close(g, sqrt(3.14159265358979323846) * exp(-2.25), 1e-10, "gaussian integral");
    check_close(s1000, 2.0, 1e-11, "simpson sin");

    int iters;
    double r2 = newton_sqrt(2 * vd[7] / 3, &iters);
    printf("newton: sqrt(2) = %.17g after %d iterations (libm %.17g)\n", r2, iters, sqrt(2.0));
    int iters_big;
    double rbig = newton_sqrt(1e20 * vd[7] / 3, &iters_big);
    printf("newton: sqrt(1e20) = %.17g after %d iterations\n", rbig, iters_big);
    double c = newton_cubic_root();
    printf("newton: root of x^3-2x-5 = %.17g (residual %a)\n", c, c * c * c - 2 * c - 5);
    check_close(c, 2.0945514815423265, 1e-15, "newton cubic");

    /* Horner evaluation of the Taylor series of exp, float and double */
    double poly = 0;
    float polyf = 0;
    for (int k = 20; k >= 0; k--) {
        double coef = 1;
        for (int j = 2; j <= k; j++)
            coef /= j;
        poly = poly * vd[1] + coef;
        polyf = polyf * vf[1] + (float)coef;
    }
    printf("horner: exp(2.5) ~ %.17g (float %.9g, libm %.17g)\n", poly, polyf, exp(2.5));

    /* naive vs Kahan summation of 0.1 a million times */
    double naive = 0, sum = 0, comp = 0;
    for (int i = 0; i < 1000000; i++) {
        naive += vd[0];
        double y = vd[0] - comp;
        double t = sum + y;
        comp = (t - sum) - y;
        sum = t;
    }
    printf("summation: naive %.17g kahan %.17g\n", naive, sum);

    /* Gaussian elimination with partial pivoting on a 4x4 Hilbert-like system */
    enum { N = 4 };
    double a[N][N + 1];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++)
            a[i][j] = 1.0 / (i + j + vd[7] - 2);
        a[i][N] = 1;
    }
    for (int col = 0; col < N; col++) {
        int piv = col;
        for (int r = col + 1; r < N; r++)
            if (fabs(a[r][col]) > fabs(a[piv][col]))
                piv = r;
        for (int j = 0; j <= N; j++) {
            double t = a[col][j];
            a[col][j] = a[piv][j];
            a[piv][j] = t;
        }
        for (int r = 0; r < N; r++) {
            if (r == col)
                continue;
            double factor = a[r][col] / a[col][col];
            for (int j = col; j <= N; j++)
                a[r][j] -= factor * a[col][j];
        }
    }
    printf("gauss: x =");
    for (int i = 0; i < N; i++)
        printf(" %.12f", a[i][N] / a[i][i]);
    printf("  (exact -4 60 -180 140)\n");

    /* Mandelbrot membership on a 64x32 grid, 200 iterations, single and double */
    int inside = 0, insidef = 0;
    for (int py = 0; py < 32; py++)
        for (int px = 0; px < 64; px++) {
            double cr = -2.0 + px * (2.5 / 64), ci = -1.0 + py * (2.0 / 32);
            double zr = 0, zi = 0;
            int it = 0;
            while (it < 200 && zr * zr + zi * zi <= 4) {
                double t = zr * zr - zi * zi + cr;
                zi = 2 * zr * zi + ci;
                zr = t;
                it++;
            }
            inside += it == 200;
            float fr = 0, fi = 0, fcr = (float)cr, fci = (float)ci;
            it = 0;
            while (it < 200 && fr * fr + fi * fi <= 4) {
                float t = fr * fr - fi * fi + fcr;
                fi = 2 * fr * fi + fci;
                fr = t;
                it++;
            }
            insidef += it == 200;
        }
    printf("mandelbrot: %d of 2048 points inside (double), %d (float)\n", inside, insidef);
}

int main(void)
{
    test_printf();
    test_libm();
    test_arith();
    test_conversions();
    test_methods();
    printf("float: %s (%d failures)\n", failures ? "FAILED" : "all checks passed", failures);
    return failures ? 1 : 0;
}
