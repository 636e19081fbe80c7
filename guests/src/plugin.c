/* A plugin for the dlopen guest, built twice: -DVARIANT=1 (libplugin1.so) and
 * -DVARIANT=2 (libplugin2.so), linked at one fixed address so that under a non-PIE
 * program ld.so asks for the same place for both. */
#include <math.h>
#include <stdio.h>

#ifndef VARIANT
#error "build with -DVARIANT=1 or -DVARIANT=2"
#endif

static int init_ran;
int plugin_counter = 100 * VARIANT;
__thread long plugin_tls = 7 * VARIANT;

__attribute__((constructor)) static void plugin_init(void) { init_ran = 1; }

__attribute__((destructor)) static void plugin_fini(void) {
    printf("plugin%d: destructor (counter %d)\n", VARIANT, plugin_counter);
}

const char *plugin_name(void) { return VARIANT == 1 ? "plugin one" : "plugin two"; }

int plugin_init_ran(void) { return init_ran; }

/* Hot enough to be translated: a loop with a variant-dependent step. */
long plugin_work(long n) {
    unsigned long h = 0x9e3779b97f4a7c15ul * VARIANT;
    for (long i = 0; i < n; i++) {
        h ^= (unsigned long)i * (VARIANT == 1 ? 31u : 131u);
        h = (h << 7) | (h >> 57);
    }
    plugin_counter++;
    return (long)(h & 0xffffffff);
}

long plugin_apply(long (*f)(long), long x) { return f(x) + VARIANT; }

long plugin_tls_bump(void) { return plugin_tls += VARIANT; }

/* Needs libm.so.6, which the program does not link: dlopen loads it as a dependency. */
double plugin_math(double x) { return cbrt(x) + exp2(VARIANT); }
