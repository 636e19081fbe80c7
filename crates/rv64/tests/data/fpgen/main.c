#include <string.h>
static u D[] = {0, 0x8000000000000000, 0x7ff0000000000000, 0xfff0000000000000, 0x7ff8000000000000, 0x7ff0000000000001,
  0xfff8000000000123, 1, 0x000fffffffffffff, 0x0010000000000000, 0x7fefffffffffffff, 0xffefffffffffffff, 0x3ff0000000000000,
  0xbff0000000000000, 0x3ff8000000000000, 0x4004000000000000, 0xc004000000000000, 0x3fe0000000000000, 0x4008000000000000,
  0x3fb999999999999a, 0x43e0000000000000, 0xc3e0000000000000, 0x43f0000000000000, 0x41e0000000000000, 0xc1e0000000200000,
  0x41efffffffffffff, 0x3ff0000000000001, 0x0010000000000001, 0x7fe0000000000000, 0x3fefffffffffffff, 0xbfe0000000000000,
  0x4330000000000001, 0x41dfffffffc00000, 0xc1e0000000000000, 0x3ca0000000000000, 0x000ffffffffffffe};
static uint32_t S[] = {0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffc00123, 1, 0x007fffff, 0x00800000,
  0x7f7fffff, 0xff7fffff, 0x3f800000, 0xbf800000, 0x3fc00000, 0x40200000, 0xc0200000, 0x3f000000, 0x40400000, 0x3dcccccd,
  0x5f000000, 0xdf000000, 0x5f800000, 0x4f000000, 0xcf000001, 0x4f7fffff, 0x3f800001, 0x00800001, 0x7f000000, 0x3f7fffff,
  0xbf000000, 0x4b000001, 0xcf000000, 0x33800000, 0x007ffffe};
static u I[] = {0, 1, (u)-1, 7, (u)-7, 0x8000000000000000, 0x7fffffffffffffff, 0x80000000, 0x7fffffff, 0xffffffff,
  0x0000000100000001, 0x20000000000001, 0xffffffff80000000, 16777217, 0x123456789abcdef, 3, 0x100000000};
static uint64_t seed = 88172645463325252ull;
static u rnd(void){ seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return seed; }
static u pick(char kind, int dbl){
  u r = rnd();
  if (kind == 'x') return (r & 3) ? I[(r >> 8) % (sizeof I / sizeof I[0])] : rnd();
  if (dbl) {
    if ((r & 7) == 0) return rnd();
    if ((r & 7) == 1) return (rnd() & 0x800fffffffffffffull) | (((rnd() % 2046) + 1) << 52);
    return D[(r >> 8) % (sizeof D / sizeof D[0])];
  }
  uint32_t v;
  if ((r & 7) == 0) v = (uint32_t)rnd();
  else v = S[(r >> 8) % (sizeof S / sizeof S[0])];
  if ((r & 63) == 9) return (u)v;  /* not NaN-boxed */
  return 0xffffffff00000000ull | v;
}
int main(void){
  for (int i = 0; i < NOPS; i++) {
    const char *k = kinds[i];
    int dbl = names[i][strlen(names[i]) - 1] == 'd';
    if (!strcmp(names[i], "fcvt.d.s")) dbl = 0;
    if (!strcmp(names[i], "fmv.x.w")) dbl = 0;
    if (names[i][5] == '.' && names[i][0]=='f' && names[i][1]=='c' && (names[i][6]=='d'||names[i][6]=='s') && k[0]=='x') dbl = 0;
    int nrm = rms[i] ? 5 : 1;
    int n = rms[i] ? 10 : 24;
    for (int m = 0; m < nrm; m++) {
      for (int j = 0; j < n; j++) {
        u a = pick(k[0], dbl), b = k[1] != '>' ? pick(k[1], dbl) : 0, c = (k[1] != '>' && k[2] != '>') ? pick(k[2], dbl) : 0;
        u r, fl;
        asm volatile("fsrm %0" :: "r"((u)m));
        asm volatile("fsflags x0");
        r = fns[i](a, b, c);
        asm volatile("frflags %0" : "=r"(fl));
        printf("%s %d %llx %llx %llx %llx %llx\n", names[i], rms[i] ? m : 7, (unsigned long long)a, (unsigned long long)b,
               (unsigned long long)c, (unsigned long long)r, (unsigned long long)fl);
      }
    }
  }
  /* Results next to the smallest normal number, where tininess is decided after
     rounding with an unbounded exponent. */
  static const struct { const char *name; u a, b, c; } edge[] = {
    {"fmul.d", 0x3fefffffffffffffull, 0x0010000000000000ull, 0},
    {"fmul.d", 0xbfefffffffffffffull, 0x0010000000000000ull, 0},
    {"fmul.d", 0x3ff0000000000001ull, 0x000fffffffffffffull, 0},
    {"fmul.s", 0xffffffff3f7fffffull, 0xffffffff00800000ull, 0},
    {"fmadd.d", 0x3fefffffffffffffull, 0x0010000000000000ull, 0},
    {"fmadd.d", 0x3fefffffffffffffull, 0x0010000000000000ull, 0x8000000000000001ull},
    {"fmadd.s", 0xffffffff3f7fffffull, 0xffffffff00800000ull, 0xffffffff00000000ull},
    {"fdiv.d", 0x000fffffffffffffull, 0x3fefffffffffffffull, 0},
    {"fdiv.d", 0x7fefffffffffffffull, 0x7fd0000000000000ull, 0},
    {"fdiv.s", 0xffffffff007fffffull, 0xffffffff3f7fffffull, 0},
    {"fcvt.s.d", 0x380fffffe0000000ull, 0, 0},
    {"fcvt.s.d", 0x380ffffff8000000ull, 0, 0},
    {"fcvt.s.d", 0xb80fffffe0000000ull, 0, 0},
  };
  for (unsigned e = 0; e < sizeof edge / sizeof edge[0]; e++) {
    int i = 0;
    while (strcmp(names[i], edge[e].name)) i++;
    for (int m = 0; m < 5; m++) {
      u r, fl;
      asm volatile("fsrm %0" :: "r"((u)m));
      asm volatile("fsflags x0");
      r = fns[i](edge[e].a, edge[e].b, edge[e].c);
      asm volatile("frflags %0" : "=r"(fl));
      printf("%s %d %llx %llx %llx %llx %llx\n", names[i], m, (unsigned long long)edge[e].a, (unsigned long long)edge[e].b,
             (unsigned long long)edge[e].c, (unsigned long long)r, (unsigned long long)fl);
    }
  }
  return 0;
}
