// A multiboot (v1) kernel, loaded by syslinux's mboot.c32, that boots Linux through its PVH entry:
// module 1 is a kernel image packed by mkpvh (the uncompressed vmlinux, so that the emulator does
// not spend minutes decompressing a bzImage), module 2 the initramfs; the multiboot command line,
// less its first word, is Linux's.
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

__attribute__((section(".multiboot"), used, aligned(4))) static const u32 mb_header[3] = {
    0x1BADB002, 3, -(0x1BADB002u + 3)}; // magic; flags: modules page-aligned, memory map wanted

__asm__(".text\n.globl _start\n_start:\n"
        "  cli\n  cld\n  mov $stack_top, %esp\n  push %ebx\n  push %eax\n  call loader_main\n"
        "1: hlt\n  jmp 1b\n"
        ".bss\n.align 16\n  .skip 16384\nstack_top:\n.text\n");

struct mb_info {
  u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr, syms[4], mmap_length,
      mmap_addr;
};
struct mb_mod { u32 start, end, string, reserved; };
struct __attribute__((packed)) mb_mmap { u32 size; u64 addr, len; u32 type; };

struct hvm_start_info {
  u32 magic, version, flags, nr_modules;
  u64 modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
  u32 memmap_entries, reserved;
};
struct hvm_modlist_entry { u64 paddr, size, cmdline_paddr, reserved; };
struct hvm_memmap_entry { u64 addr, size; u32 type, reserved; };

static struct hvm_start_info start_info;
static struct hvm_modlist_entry modlist[1];
static struct hvm_memmap_entry memmap[128];
static char cmdline[4096];

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) {
  u8 v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static void puts_(const char *s) {
  for (; *s; s++) {
    while (!(inb(0x3f8 + 5) & 0x20)) {}
    outb(0x3f8, (u8)*s);
  }
}
static void die(const char *s) {
  puts_("\r\npvhboot: ");
  puts_(s);
  puts_("\r\nKernel panic - pvhboot failed\r\n");
  for (;;) __asm__ volatile("cli; hlt");
}

// Bochs runs a REP MOVS/STOS fast only forwards: an overlapping upward move goes in pieces, from
// the end, none overlapping its own destination.
static void copy_forward(u32 dst, u32 src, u32 n) {
  u32 words = n / 4, bytes = n % 4;
  __asm__ volatile("cld; rep movsl; mov %3, %%ecx; rep movsb"
                   : "+D"(dst), "+S"(src), "+c"(words)
                   : "r"(bytes)
                   : "memory");
}
static void copy(u32 dst, u32 src, u32 n) {
  if (dst == src || !n) return;
  if (dst < src || dst >= src + n) {
    copy_forward(dst, src, n);
    return;
  }
  u32 step = dst - src;
  while (n) {
    u32 len = n < step ? n : step;
    n -= len;
    copy_forward(dst + n, src + n, len);
  }
}
static void fill0(u32 dst, u32 n) {
  u32 words = n / 4, bytes = n % 4;
  __asm__ volatile("cld; rep stosl; mov %2, %%ecx; rep stosb"
                   : "+D"(dst), "+c"(words)
                   : "r"(bytes), "a"(0)
                   : "memory");
}

extern char _end[];

void loader_main(u32 magic, struct mb_info *mbi) {
  outb(0x3f8 + 3, 0x80); // COM1: 115200 8N1
  outb(0x3f8, 1);
  outb(0x3f8 + 1, 0);
  outb(0x3f8 + 3, 3);
  puts_("pvhboot: loading the kernel\r\n");
  if (magic != 0x2BADB002) die("not started by a multiboot loader");
  if (!(mbi->flags & 8) || mbi->mods_count < 2) die("needs 2 modules: kernel image, initramfs");
  if (!(mbi->flags & 64)) die("no memory map");
  // Take what is needed from the multiboot information before anything moves.
  int n = 0;
  for (u32 p = mbi->mmap_addr; p < mbi->mmap_addr + mbi->mmap_length && n < 128;) {
    struct mb_mmap *m = (struct mb_mmap *)p;
    memmap[n].addr = m->addr;
    memmap[n].size = m->len;
    memmap[n].type = m->type;
    n++;
    p += m->size + 4;
  }
  if (mbi->flags & 4) { // the command line, less its first word (this file's name)
    const char *s = (const char *)mbi->cmdline;
    while (*s && *s != ' ') s++;
    while (*s == ' ') s++;
    for (u32 i = 0; s[i] && i < sizeof cmdline - 1; i++) cmdline[i] = s[i];
  }
  struct mb_mod *mods = (struct mb_mod *)mbi->mods_addr;
  u32 k_at = mods[0].start, k_size = mods[0].end - mods[0].start;
  u32 i_at = mods[1].start, i_size = mods[1].end - mods[1].start;
  if (k_at < (u32)_end || i_at < (u32)_end) die("a module lies below pvhboot");
  u32 *hdr = (u32 *)k_at;
  if (k_size < 24 || hdr[0] != 0x32485650) die("module 1 is not a kernel image from mkpvh");
  u32 entry = hdr[1], kernel_end = hdr[3], nzero = hdr[4], nchunks = hdr[5];
  // The top of the highest RAM below 4 GiB takes both modules, the higher one at the top, so that
  // each move goes upwards (or nowhere) and clobbers nothing still needed.
  u64 top = 0;
  for (int i = 0; i < n; i++) {
    if (memmap[i].type != 1) continue;
    u64 end = memmap[i].addr + memmap[i].size;
    if (end > 0x100000000ull) end = 0x100000000ull;
    if (end > top && memmap[i].addr < end) top = end;
  }
  top &= ~0xfffull;
  u32 k_len = (k_size + 0xfff) & ~0xfffu, i_len = (i_size + 0xfff) & ~0xfffu;
  if (top < (u64)kernel_end + k_len + i_len) die("not enough memory for the kernel and the initramfs");
  u32 k_to, i_to;
  if (k_at > i_at) {
    k_to = (u32)top - k_len;
    i_to = k_to - i_len;
    copy(k_to, k_at, k_size);
    copy(i_to, i_at, i_size);
  } else {
    i_to = (u32)top - i_len;
    k_to = i_to - k_len;
    copy(i_to, i_at, i_size);
    copy(k_to, k_at, k_size);
  }
  hdr = (u32 *)k_to;
  for (u32 i = 0; i < nzero; i++) fill0(hdr[6 + 2 * i], hdr[7 + 2 * i]);
  u32 *chunk = hdr + 6 + 2 * nzero;
  for (u32 i = 0; i < nchunks; i++) copy(chunk[3 * i], k_to + chunk[3 * i + 2], chunk[3 * i + 1]);

  modlist[0].paddr = i_to;
  modlist[0].size = i_size;
  start_info.magic = 0x336ec578;
  start_info.version = 1;
  start_info.nr_modules = 1;
  start_info.modlist_paddr = (u32)modlist;
  start_info.cmdline_paddr = (u32)cmdline;
  start_info.memmap_paddr = (u32)memmap;
  start_info.memmap_entries = n;
  puts_("pvhboot: starting the kernel\r\n");
  __asm__ volatile("jmp *%0" : : "a"(entry), "b"(&start_info), "c"(0), "d"(0) : "memory");
}
