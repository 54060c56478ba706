// Packs a vmlinux ELF into the image that pvhboot loads: its PT_LOAD segments cut into runs of
// pages that are not all zero, and the PVH entry point (the Xen ELF note PHYS32_ENTRY).
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct chunk { uint32_t paddr, size, offset; };

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: mkpvh VMLINUX OUT\n"); return 2; }
  FILE *f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 1; }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  unsigned char *elf = malloc(n);
  if (fread(elf, 1, n, f) != (size_t)n) { perror("read"); return 1; }
  fclose(f);
  Elf64_Ehdr *eh = (Elf64_Ehdr *)elf;
  if (n < (long)sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_machine != EM_X86_64) {
    fprintf(stderr, "mkpvh: %s is not an x86-64 ELF file\n", argv[1]);
    return 1;
  }
  Elf64_Phdr *ph = (Elf64_Phdr *)(elf + eh->e_phoff);
  uint32_t entry = 0, lo = 0xffffffffu, hi = 0;
  static struct chunk chunks[65536];
  static struct { uint32_t paddr, size; } zero[65536];
  uint32_t nchunks = 0, nzero = 0;
  for (int i = 0; i < eh->e_phnum; i++) {
    if (ph[i].p_type == PT_NOTE) {
      for (uint64_t off = ph[i].p_offset; off + 12 <= ph[i].p_offset + ph[i].p_filesz;) {
        Elf64_Nhdr *nh = (Elf64_Nhdr *)(elf + off);
        const char *name = (const char *)(nh + 1);
        const unsigned char *desc = (const unsigned char *)name + ((nh->n_namesz + 3) & ~3u);
        if (nh->n_type == 18 && nh->n_namesz == 4 && !memcmp(name, "Xen", 4)) memcpy(&entry, desc, 4);
        off += sizeof *nh + ((nh->n_namesz + 3) & ~3u) + ((nh->n_descsz + 3) & ~3u);
      }
    }
    if (ph[i].p_type != PT_LOAD || !ph[i].p_memsz) continue;
    uint64_t base = ph[i].p_paddr, end = base + ph[i].p_memsz;
    if (end > 0xffffffffu || ph[i].p_offset + ph[i].p_filesz > (uint64_t)n) {
      fprintf(stderr, "mkpvh: bad segment\n");
      return 1;
    }
    if (base < lo) lo = base;
    if (end > hi) hi = end;
    const unsigned char *data = elf + ph[i].p_offset;
    uint64_t zero_from = base; // what lies between the pages with data is zeroed by pvhboot
    for (uint64_t at = 0; at < ph[i].p_filesz;) {
      uint64_t len = ph[i].p_filesz - at < 4096 ? ph[i].p_filesz - at : 4096;
      int nonzero = 0;
      for (uint64_t k = 0; k < len && !nonzero; k++) nonzero = data[at + k] != 0;
      if (nonzero) {
        if (nchunks == 65536 || nzero == 65536) {
          fprintf(stderr, "mkpvh: too many chunks\n");
          return 1;
        }
        if (zero_from < base + at) {
          zero[nzero].paddr = zero_from;
          zero[nzero++].size = base + at - zero_from;
        }
        struct chunk *c = nchunks ? &chunks[nchunks - 1] : NULL;
        if (c && c->paddr + c->size == base + at && c->offset + c->size == ph[i].p_offset + at) {
          c->size += len;
        } else {
          chunks[nchunks++] = (struct chunk){base + at, len, ph[i].p_offset + at};
        }
        zero_from = base + at + len;
      }
      at += len;
    }
    if (zero_from < end) {
      if (nzero == 65536) {
        fprintf(stderr, "mkpvh: too many chunks\n");
        return 1;
      }
      zero[nzero].paddr = zero_from;
      zero[nzero++].size = end - zero_from;
    }
  }
  if (!entry) {
    fprintf(stderr, "mkpvh: %s has no PVH entry point (CONFIG_PVH)\n", argv[1]);
    return 1;
  }
  // Header: magic, entry, the kernel's lowest and end address, zero-range count, chunk count; the
  // zero ranges (address, size); the chunks (address, size, offset in this file); the data.
  uint32_t head = 24 + 8 * nzero + 12 * nchunks, pos = (head + 4095) & ~4095u;
  FILE *o = fopen(argv[2], "wb");
  if (!o) {
    perror(argv[2]);
    return 1;
  }
  uint32_t h[6] = {0x32485650 /* "PVH2" */, entry, lo, hi, nzero, nchunks};
  fwrite(h, 4, 6, o);
  fwrite(zero, 8, nzero, o);
  for (uint32_t i = 0; i < nchunks; i++) {
    uint32_t c[3] = {chunks[i].paddr, chunks[i].size, pos};
    fwrite(c, 4, 3, o);
    pos += chunks[i].size;
  }
  for (uint32_t i = head; i < ((head + 4095) & ~4095u); i++) fputc(0, o);
  for (uint32_t i = 0; i < nchunks; i++) fwrite(elf + chunks[i].offset, 1, chunks[i].size, o);
  if (fclose(o)) { perror(argv[2]); return 1; }
  return 0;
}
