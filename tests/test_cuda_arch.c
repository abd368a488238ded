/*
 * test_cuda_arch.c - the CUDA kernels carry device code for the architectures the build was
 * meant for: ti's default sm_90 SASS + compute_90 PTX (CMakeLists.txt), or the list the
 * configure chose. Runs without a GPU and without cuobjdump: it reads the fat binaries that nvcc
 * embeds in each object (the ELF section .nv_fatbin).
 *
 * Fat binary layout (as nvcc writes it; checked against objects built with known -gencode
 * flags): a header {u32 magic 0xBA55ED50, u16 version, u16 header size, u64 size of the
 * entries}, then entries, each {u16 kind (1 PTX, 2 ELF cubin = SASS), u16 version, u32 header
 * size, u64 payload size, ..., u32 architecture (e.g. 90) at byte 28}, payload after the header.
 * Several fat binaries may follow each other in the section.
 *
 * Usage: test_cuda_arch ARCHS OBJECT...
 *   ARCHS: CMake's list, items separated by ',' or ';' ("90", "80,90-virtual", ...): NN wants
 *   sm_NN SASS and compute_NN PTX, NN-real the SASS, NN-virtual the PTX; "all", "all-major" or
 *   "native" want some SASS.
 *   OBJECT: the objects of ti_cuda_kernels (an argument may hold a ';'-separated list, as
 *   $<TARGET_OBJECTS> gives it); those not compiled from .cu are ignored.
 */
#include <elf.h>
#include <string.h>

#include "test_common.h"

#define MAX_ENTRIES 64

struct entry {
    int kind; /* 1 PTX, 2 SASS */
    int arch;
};

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        if (len > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len))) {
            if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
                free(buf);
                buf = NULL;
            } else {
                *n = (size_t)len;
            }
        }
    }
    fclose(f);
    return buf;
}

/* The .nv_fatbin section of a 64-bit ELF object: *off, *size; 0 when absent */
static int find_fatbin(const char *obj, size_t n, size_t *off, size_t *size) {
    Elf64_Ehdr eh;
    if (n < sizeof eh || memcmp(obj, ELFMAG, SELFMAG) != 0 || obj[EI_CLASS] != ELFCLASS64) return 0;
    memcpy(&eh, obj, sizeof eh);
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff > n ||
        (n - eh.e_shoff) / sizeof(Elf64_Shdr) < eh.e_shnum || eh.e_shstrndx >= eh.e_shnum)
        return 0;
    Elf64_Shdr names;
    memcpy(&names, obj + eh.e_shoff + (size_t)eh.e_shstrndx * sizeof names, sizeof names);
    if (names.sh_offset > n || names.sh_size > n - names.sh_offset) return 0;
    for (int i = 0; i < eh.e_shnum; i++) {
        Elf64_Shdr sh;
        memcpy(&sh, obj + eh.e_shoff + (size_t)i * sizeof sh, sizeof sh);
        if (sh.sh_name >= names.sh_size || sh.sh_offset > n || sh.sh_size > n - sh.sh_offset)
            continue;
        const char *name = obj + names.sh_offset + sh.sh_name;
        size_t room = names.sh_size - sh.sh_name;
        if (strnlen(name, room) < room && strcmp(name, ".nv_fatbin") == 0) {
            *off = sh.sh_offset;
            *size = sh.sh_size;
            return 1;
        }
    }
    return 0;
}

static uint64_t rd(const char *p, int bytes) {
    uint64_t v = 0;
    memcpy(&v, p, (size_t)bytes); /* little-endian host, as the objects */
    return v;
}

/* Entries of the fat binaries in [p, p + n); returns their count or -1 when malformed */
static int parse_fatbins(const char *p, size_t n, struct entry *e, int max) {
    int ne = 0;
    size_t pos = 0;
    while (pos + 16 <= n && rd(p + pos, 4) == 0xBA55ED50u) {
        size_t hs = (size_t)rd(p + pos + 6, 2);
        uint64_t fs = rd(p + pos + 8, 8);
        if (hs < 16 || hs > n - pos || fs > n - pos - hs) return -1;
        size_t q = pos + hs, end = pos + hs + (size_t)fs;
        while (q + 32 <= end) {
            size_t eh = (size_t)rd(p + q + 4, 4);
            uint64_t ps = rd(p + q + 8, 8);
            if (eh < 32 || eh > end - q || ps > end - q - eh) return -1;
            if (ne < max) {
                e[ne].kind = (int)rd(p + q, 2);
                e[ne].arch = (int)rd(p + q + 28, 4);
            }
            ne++;
            q += eh + (size_t)ps;
        }
        pos = end;
        while (pos < n && pos % 8) /* the next fat binary starts aligned */
            pos++;
        while (pos + 4 <= n && rd(p + pos, 4) == 0) /* zero padding */
            pos += 8;
    }
    return ne > max ? max : ne;
}

static int has(const struct entry *e, int n, int kind, int arch) {
    for (int i = 0; i < n; i++)
        if (e[i].kind == kind && (arch < 0 || e[i].arch == arch)) return 1;
    return 0;
}

static const char *archs;
static char **objs;
static int nobjs;

TEST(kernels_carry_the_wanted_device_code) {
    int checked = 0;
    for (int i = 0; i < nobjs; i++) {
        size_t len = strlen(objs[i]);
        int is_cu = (len > 5 && strcmp(objs[i] + len - 5, ".cu.o") == 0) ||
                    (len > 7 && strcmp(objs[i] + len - 7, ".cu.obj") == 0);
        if (!is_cu) continue;
        checked++;
        size_t n = 0, off = 0, size = 0;
        char *obj = read_file(objs[i], &n);
        CHECK(obj != NULL);
        if (!obj) {
            fprintf(stderr, "  cannot read %s\n", objs[i]);
            continue;
        }
        int found = find_fatbin(obj, n, &off, &size);
        CHECK(found);
        struct entry e[MAX_ENTRIES];
        int ne = found ? parse_fatbins(obj + off, size, e, MAX_ENTRIES) : 0;
        CHECK(ne > 0);
        const char *base = strrchr(objs[i], '/') ? strrchr(objs[i], '/') + 1 : objs[i];
        printf("  %-16s", base);
        for (int j = 0; j < ne; j++)
            printf(" %s_%d", e[j].kind == 2 ? "sm" : e[j].kind == 1 ? "compute" : "?", e[j].arch);
        printf("\n");
        /* every item of the wanted list */
        char list[256];
        snprintf(list, sizeof list, "%s", archs);
        for (char *save = NULL, *it = strtok_r(list, ",;", &save); it;
             it = strtok_r(NULL, ",;", &save)) {
            if (!strcmp(it, "all") || !strcmp(it, "all-major") || !strcmp(it, "native")) {
                CHECK(has(e, ne, 2, -1));
                continue;
            }
            int arch = atoi(it);
            int want_sass = !strstr(it, "-virtual"), want_ptx = !strstr(it, "-real");
            CHECK(arch > 0);
            if (want_sass && !has(e, ne, 2, arch)) {
                tc_failures++;
                fprintf(stderr, "  %s: no sm_%d SASS (wanted: %s)\n", base, arch, archs);
            }
            if (want_ptx && !has(e, ne, 1, arch)) {
                tc_failures++;
                fprintf(stderr, "  %s: no compute_%d PTX (wanted: %s)\n", base, arch, archs);
            }
        }
        free(obj);
    }
    CHECK(checked > 0); /* the build has CUDA kernels */
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_cuda_arch ARCHS OBJECT...\n");
        return 2;
    }
    archs = argv[1];
    /* split the object arguments on ';' */
    static char *split[1024];
    for (int a = 2; a < argc; a++)
        for (char *save = NULL, *it = strtok_r(argv[a], ";", &save); it && nobjs < 1024;
             it = strtok_r(NULL, ";", &save))
            split[nobjs++] = it;
    objs = split;
    printf("  wanted: %s\n", archs);
    RUN(kernels_carry_the_wanted_device_code);
    return tc_finish();
}
