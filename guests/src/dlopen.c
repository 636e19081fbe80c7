/* dlopen, dlsym, dlclose of two plugins (libplugin1.so, libplugin2.so, found through
 * the program's RUNPATH $ORIGIN, i.e. next to it), with code hot enough to be
 * translated, replaced at the same address after dlclose. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef const char *(*name_fn)(void);
typedef int (*int_fn)(void);
typedef long (*work_fn)(long);
typedef long (*apply_fn)(long (*)(long), long);
typedef long (*long_fn)(void);
typedef double (*math_fn)(double);

static long twice(long x) { return 2 * x; }

struct plugin {
    void *h;
    name_fn name;
    int_fn init_ran;
    work_fn work;
    apply_fn apply;
    long_fn tls_bump;
    math_fn math;
    int *counter;
};

static void *sym(void *h, const char *s) {
    void *p = dlsym(h, s);
    if (!p) printf("dlsym %s failed\n", s);
    return p;
}

static int open_plugin(struct plugin *p, const char *file) {
    p->h = dlopen(file, RTLD_NOW);
    if (!p->h) {
        printf("dlopen %s failed\n", file);
        return 0;
    }
    p->name = (name_fn)sym(p->h, "plugin_name");
    p->init_ran = (int_fn)sym(p->h, "plugin_init_ran");
    p->work = (work_fn)sym(p->h, "plugin_work");
    p->apply = (apply_fn)sym(p->h, "plugin_apply");
    p->tls_bump = (long_fn)sym(p->h, "plugin_tls_bump");
    p->math = (math_fn)sym(p->h, "plugin_math");
    p->counter = (int *)sym(p->h, "plugin_counter");
    return p->name && p->init_ran && p->work && p->apply && p->tls_bump && p->math &&
           p->counter;
}

/* Calls the plugin's hot function many times: the JIT translates it. */
static unsigned long exercise(struct plugin *p, int calls) {
    unsigned long sum = 0;
    for (int i = 0; i < calls; i++) sum = sum * 33 + (unsigned long)p->work(200 + i % 50);
    return sum;
}

/* The last ": "-separated part of a dlerror() message (the rest names host paths). */
static const char *reason(const char *msg) {
    const char *r = msg ? strrchr(msg, ':') : NULL;
    return r ? r + 2 : "(none)";
}

int main(void) {
    struct plugin a, b;
    if (!open_plugin(&a, "libplugin1.so")) return 1;
    printf("%s: constructor ran %d, counter %d\n", a.name(), a.init_ran(), *a.counter);
    printf("work(1000) = %ld\n", a.work(1000));
    printf("checksum of 3000 calls = %lu\n", exercise(&a, 3000));
    printf("counter %d\n", *a.counter);
    printf("apply(twice, 20) = %ld\n", a.apply(twice, 20));
    printf("tls %ld %ld\n", a.tls_bump(), a.tls_bump());
    printf("math(27) = %.6f\n", a.math(27.0));
    uintptr_t work_a = (uintptr_t)a.work;

    void *again = dlopen("libplugin1.so", RTLD_NOW);
    printf("second dlopen gives the same handle: %s\n", again == a.h ? "yes" : "no");
    dlclose(again);
    printf("still loaded after one dlclose: counter %d\n", *a.counter);
    fflush(stdout);
    dlclose(a.h);

    if (!open_plugin(&b, "libplugin2.so")) return 1;
    printf("%s: constructor ran %d, counter %d\n", b.name(), b.init_ran(), *b.counter);
    printf("loaded where plugin one was: %s\n", (uintptr_t)b.work == work_a ? "yes" : "no");
    printf("work(1000) = %ld\n", b.work(1000));
    printf("checksum of 3000 calls = %lu\n", exercise(&b, 3000));
    printf("apply(twice, 20) = %ld\n", b.apply(twice, 20));
    printf("tls %ld %ld\n", b.tls_bump(), b.tls_bump());
    printf("math(27) = %.6f\n", b.math(27.0));
    fflush(stdout);
    dlclose(b.h);

    /* Alternate: the same addresses hold the one plugin's code, then the other's. */
    unsigned long total = 0;
    int same = 0;
    for (int round = 0; round < 16; round++) {
        struct plugin *p = round % 2 ? &b : &a;
        if (!open_plugin(p, round % 2 ? "libplugin2.so" : "libplugin1.so")) return 1;
        same += (uintptr_t)p->work == work_a;
        total = total * 1000003 + exercise(p, 400) + (unsigned long)*p->counter;
        fflush(stdout);
        dlclose(p->h);
    }
    printf("16 reloads: checksum %lu, at the same address %d times\n", total, same);

    void *missing = dlopen("libmissing.so", RTLD_NOW);
    printf("dlopen of a missing library: %s, %s\n", missing ? "loaded" : "NULL",
           reason(dlerror()));
    if (!open_plugin(&a, "libplugin1.so")) return 1;
    void *nosuch = dlsym(a.h, "no_such_symbol");
    printf("dlsym of a missing symbol: %s, %s\n", nosuch ? "found" : "NULL", reason(dlerror()));
    printf("%s again: counter %d\n", a.name(), *a.counter);
    return 0;
}
