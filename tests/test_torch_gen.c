/*
 * test_torch_gen.c - ti_torch_randn against torch 1.13's torch.randn with a seeded CPU
 * generator (tests/fixtures/torch_randn.h5, scripts/oracle/torch_randn.py): sizes 1 .. 10^5,
 * 57 seeds (0, 2^32 + 5, 2^63 - 1 included), consecutive calls on one generator (the scalar
 * path's cached normal and the stream position carry over). Required: bit for bit.
 */
#include <stdint.h>
#include <string.h>

#include "h5util.h"
#include "test_common.h"
#include "torch_gen.h"

static hid_t fix = -1;

static long ulp_diff(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if (ia < 0) ia = (int32_t)(0x80000000u - (uint32_t)ia);
    if (ib < 0) ib = (int32_t)(0x80000000u - (uint32_t)ib);
    long d = (long)ia - (long)ib;
    return d < 0 ? -d : d;
}

TEST(randn_matches_torch) {
    double nc = 0;
    CHECK(h5u_attr(fix, "/", "ncases", &nc, 1) == 1);
    long total = 0, exact = 0, worst = 0;
    for (int k = 0; k < (int)nc; k++) {
        char grp[64], name[96];
        snprintf(grp, sizeof grp, "case_%d", k);
        double hi = 0, lo = 0, ncalls = 0;
        CHECK(h5u_attr(fix, grp, "seed_hi", &hi, 1) == 1);
        CHECK(h5u_attr(fix, grp, "seed_lo", &lo, 1) == 1);
        CHECK(h5u_attr(fix, grp, "ncalls", &ncalls, 1) == 1);
        uint64_t seed = ((uint64_t)hi << 32) | (uint64_t)lo;
        struct ti_torch_gen g;
        ti_torch_gen_seed(&g, seed);
        for (int c = 0; c < (int)ncalls; c++) {
            snprintf(name, sizeof name, "%s/call_%d", grp, c);
            double *want = NULL;
            int nd = 0;
            int64_t shape[6];
            CHECK(h5u_read(fix, name, &want, &nd, shape) == 0);
            if (!want) return;
            size_t n = (size_t)shape[0];
            float *got = malloc(n * sizeof *got);
            ti_torch_randn(&g, got, n);
            long bad = 0;
            for (size_t i = 0; i < n; i++) {
                long d = ulp_diff(got[i], (float)want[i]);
                if (d > worst) worst = d;
                if (d == 0)
                    exact++;
                else if (bad++ < 3)
                    fprintf(stderr,
                            "seed %llu call %d (n=%zu) [%zu]: got %.9g want %.9g (%ld ulp)\n",
                            (unsigned long long)seed, c, n, i, got[i], want[i], d);
            }
            total += (long)n;
            CHECK(bad == 0);
            free(got);
            free(want);
        }
    }
    printf("torch_randn: %ld of %ld values bit for bit, worst %ld ulp\n", exact, total, worst);
    CHECK(total > 100000);
}

/* The same seed restarts the stream; a copy of the generator continues identically. */
TEST(reseed_and_copy) {
    struct ti_torch_gen a, b;
    float x[40], y[40];
    ti_torch_gen_seed(&a, 7);
    ti_torch_randn(&a, x, 3); /* leaves a cached normal behind */
    b = a;
    ti_torch_randn(&a, x, 40);
    ti_torch_randn(&b, y, 40);
    CHECK(memcmp(x, y, sizeof x) == 0);
    ti_torch_gen_seed(&a, 7);
    ti_torch_gen_seed(&b, 7);
    ti_torch_randn(&a, x, 1);
    ti_torch_randn(&b, y, 1);
    CHECK(x[0] == y[0]);
}

int main(void) {
    fix = h5u_open("tests/fixtures/torch_randn.h5");
    if (fix < 0) {
        fprintf(stderr, "missing tests/fixtures/torch_randn.h5\n");
        return 1;
    }
    RUN(randn_matches_torch);
    RUN(reseed_and_copy);
    h5u_close(fix);
    return tc_finish();
}
