#!/usr/bin/env bash
# Runs a static x86-64 Linux binary inside the Bochs emulator, on an emulated CPU with AVX-512
# (F/BW/VL/DQ/VNNI and more: Bochs' "tigerlake" model), to test AVX-512 kernels on a machine
# without them (QEMU's TCG stops at AVX2): scripts/test-simd.sh avx512 (and with it CI) runs the
# kernels' check here. Emulated timings say nothing about real speed. Here Bochs runs some 40-45 million guest instructions a
# second (about 130 times slower than native for plain integer code, AVX-512 no slower than that)
# on one emulated CPU, after a boot of about 17 s.
#   scripts/run-in-bochs.sh [VAR=VALUE ...] BINARY [ARGS...]
# Prints what BINARY writes (stdout and stderr both to stdout: the guest's serial console merges
# them) and exits with BINARY's exit status (128+N when signal N killed it); 124 on timeout, 125
# when the emulator or the guest failed.
#
# How: Debian's own kernel (linux-image-*-amd64, fetched with apt-get download, never installed)
# boots from a small El Torito ISO (isolinux) with an initramfs holding BINARY and a tiny static
# init, which runs BINARY in /work with ARGS and the VAR=VALUE environment, prints its exit status
# on the serial console and powers off. A bzImage would spend ~2 minutes of emulated time
# decompressing itself, so by default the kernel is decompressed here once and booted through
# its PVH entry by a small multiboot loader (pvhboot, started by syslinux's mboot.c32). Installs
# bochs, bochsbios, vgabios, xorriso, isolinux, syslinux-common, cpio and xz-utils with apt-get
# when missing. The helper programs' sources are in scripts/bochs/ (init.c, the guest's PID 1;
# mkpvh.c, which packs the kernel; pvhboot.c and pvhboot.ld, the loader); they are built, and the
# kernel kept, in .cache/bochs/.
#
# Debian's Bochs has no headless display: while it runs, its VNC display listens on port 5900 (no
# password; it shows the guest's text console).
#
# Kernel parameters work around Bochs 2.7's CPU model: clearcpuid=pku (CPUID leaf 0xD gives PKRU
# no size, which makes Linux give up XSAVE and with it AVX), xsaves,xsavec (CPUID reports the
# standard, not the compacted, XSAVE size), fsrm (Bochs leaves fast strings off, so Linux drops
# ERMS but keeps FSRM, and its memmove then loops over all memory at the first printk).
#
#   BOCHS_TIMEOUT=S   seconds for boot and run together, then bochs is killed (default: 900)
#   BOCHS_MEM=MB      guest memory (default: 512; the initramfs, binary included, lives in it)
#   BOCHS_CPU=MODEL   Bochs CPU model (default: tigerlake; see bochs-bin --help cpu)
#   BOCHS_IPS=N       instructions per emulated second for Bochs' timers and serial line
#                     (default: 50000000); guest clocks show emulated time, not wall time
#   BOCHS_FILES="F.." more files copied into the guest's /work, next to the binary
#   BOCHS_CMDLINE=S   more kernel parameters
#   BOCHS_KERNEL=F    a bzImage to boot instead of Debian's
#   BOCHS_BOOT=bzimage  boot the bzImage itself (slow) instead of through its PVH entry
#   BOCHS_VERBOSE=1   print how long the boot and the run took; 2: and the kernel's messages, with
#                     wall-clock times
#   BOCHS_KEEP=1      keep the run's directory (ISO, bochsrc, logs) and print where it is
set -euo pipefail
self=run-in-bochs.sh
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=$repo/.cache/bochs
timeout_s=${BOCHS_TIMEOUT:-900}
mem=${BOCHS_MEM:-512}
cpu_model=${BOCHS_CPU:-tigerlake}
ips=${BOCHS_IPS:-50000000}
verbose=${BOCHS_VERBOSE:-0}
boot_mode=${BOCHS_BOOT:-pvh}

usage() {
  echo "usage: scripts/$self [VAR=VALUE ...] BINARY [ARGS...]" >&2
  exit 2
}
fail() {
  echo "$self: $*" >&2
  exit 125
}

envs=()
while [ $# -gt 0 ] && [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do
  envs+=("$1")
  shift
done
[ $# -ge 1 ] || usage
case $1 in -h | --help) usage ;; esac
binary=$1
shift
[ -f "$binary" ] || fail "no such file: $binary"
[[ $timeout_s =~ ^[0-9]+$ ]] || fail "BOCHS_TIMEOUT must be a number of seconds"
case $boot_mode in pvh | bzimage) ;; *) fail "BOCHS_BOOT must be pvh or bzimage" ;; esac

# --- Debian packages ---
need=()
command -v bochs-bin >/dev/null || need+=(bochs)
[ -f /usr/share/bochs/BIOS-bochs-latest ] || need+=(bochsbios)
[ -f /usr/share/vgabios/vgabios.bin ] || need+=(vgabios)
command -v xorriso >/dev/null || need+=(xorriso)
[ -f /usr/lib/ISOLINUX/isolinux.bin ] || need+=(isolinux)
[ -f /usr/lib/syslinux/modules/bios/mboot.c32 ] || need+=(syslinux-common)
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v readelf >/dev/null || need+=(binutils)
sudo_cmd=()
if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi
apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    "${sudo_cmd[@]}" apt-get update -qq
    apt_updated=1
  fi
}
if [ ${#need[@]} -gt 0 ]; then
  echo "$self: installing ${need[*]}" >&2
  apt_update
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >&2
fi

# --- the binary must be a static x86-64 ELF (the guest has no libraries) ---
elf_header=$(LC_ALL=C readelf -h "$binary" 2>/dev/null) || fail "$binary is not an ELF file"
grep -q 'Machine:.*X86-64' <<<"$elf_header" || fail "$binary is not an x86-64 binary"
if LC_ALL=C readelf -lW "$binary" 2>/dev/null | grep -q 'Requesting program interpreter'; then
  fail "$binary is dynamically linked; link it with -static"
fi

mkdir -p "$cache/src"

# Builds $cache/NAME from SOURCE-TEXT (kept as $cache/src/FILE) with COMMAND..., in which the
# words @SRC and @OUT stand for the source and the output; only when the source has changed.
build() {
  local name=$1 file=$2 text=$3
  shift 3
  if [ -f "$cache/$name" ] && [ "$(cat "$cache/src/$file" 2>/dev/null)" = "$text" ]; then
    return
  fi
  printf '%s\n' "$text" >"$cache/src/$file"
  local args=() a
  for a in "$@"; do
    a=${a//@SRC/$cache/src/$file}
    args+=("${a//@OUT/$cache/$name.tmp}")
  done
  "${args[@]}" || fail "cannot build $cache/$name"
  mv "$cache/$name.tmp" "$cache/$name"
}

# --- the kernel: Debian's, from the linux-image-amd64 metapackage's dependency ---
if [ -n "${BOCHS_KERNEL:-}" ]; then
  kernel=$BOCHS_KERNEL
  [ -f "$kernel" ] || fail "no such kernel: $kernel"
else
  kernel=$cache/vmlinuz
  if [ ! -f "$kernel" ]; then
    kernel_pkg() {
      LC_ALL=C apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
    }
    pkg=$(kernel_pkg)
    if [ -z "$pkg" ]; then
      apt_update
      pkg=$(kernel_pkg)
    fi
    [ -n "$pkg" ] || fail "apt-cache finds no linux-image-*-amd64 package"
    echo "$self: fetching the kernel from $pkg" >&2
    dl=$(mktemp -d "$cache/download.XXXXXX")
    # As root, apt-get download says that it cannot drop to the _apt user here and downloads
    # anyway: its output is shown only when it fails.
    if ! (cd "$dl" && apt-get download -q "$pkg" >apt.log 2>&1); then
      cat "$dl/apt.log" >&2
      rm -rf "$dl"
      fail "apt-get download $pkg failed"
    fi
    dpkg-deb --fsys-tarfile "$dl"/*.deb | tar -x -C "$dl" --wildcards './boot/vmlinuz-*'
    mv "$dl"/boot/vmlinuz-* "$kernel.tmp"
    printf '%s %s\n' "$pkg" "$(dpkg-deb -f "$dl"/*.deb Version)" >"$cache/kernel-version"
    mv "$kernel.tmp" "$kernel"
    rm -rf "$dl"
  fi
fi

# --- the init: runs /bochs/argv with /bochs/env, prints the exit status, powers off ---
init_src=$(cat "$repo/scripts/bochs/init.c")

build init init.c "$init_src" gcc -static -O2 -Wall -o @OUT @SRC

# --- PVH boot: the decompressed kernel, packed, and the multiboot loader that enters it ---
if [ "$boot_mode" = pvh ]; then
  mkpvh_src=$(cat "$repo/scripts/bochs/mkpvh.c")
  build mkpvh mkpvh.c "$mkpvh_src" gcc -O2 -Wall -o @OUT @SRC

  pvhboot_src=$(cat "$repo/scripts/bochs/pvhboot.c")
  pvhboot_lds=$(cat "$repo/scripts/bochs/pvhboot.ld")
  [ "$(cat "$cache/src/pvhboot.ld" 2>/dev/null)" = "$pvhboot_lds" ] ||
    { printf '%s\n' "$pvhboot_lds" >"$cache/src/pvhboot.ld"; rm -f "$cache/pvhboot.elf"; }
  ld_flags=()
  if ld --help 2>/dev/null | grep -q no-warn-rwx-segments; then
    ld_flags=('-Wl,--no-warn-rwx-segments')
  fi
  build pvhboot.elf pvhboot.c "$pvhboot_src" gcc -m32 -O2 -Wall -ffreestanding -fno-pic -fno-pie \
    -fno-stack-protector -fno-asynchronous-unwind-tables -mno-sse -mno-mmx -nostdlib -static \
    -no-pie -Wl,--build-id=none -Wl,-T,"$cache/src/pvhboot.ld" "${ld_flags[@]}" -o @OUT @SRC

  # The bzImage's payload (setup header: setup_sects, payload_offset, payload_length) is the
  # compressed vmlinux: decompressed and packed once per kernel.
  key=$(cksum <"$kernel" | cut -d' ' -f1)
  image=$cache/kernel-$key.pvh
  if [ ! -f "$image" ] || [ "$image" -ot "$cache/mkpvh" ]; then
    u8() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
    u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
    setup_sects=$(u8 "$kernel" $((0x1f1)))
    [ "$setup_sects" != 0 ] || setup_sects=4
    offset=$(((setup_sects + 1) * 512 + $(u32 "$kernel" $((0x248)))))
    length=$(u32 "$kernel" $((0x24c)))
    magic=$(od -An -tx1 -j "$offset" -N4 "$kernel" | tr -d ' ')
    case $magic in
      fd377a58) decompress=(xz -dc --single-stream) ;;
      1f8b*) decompress=(gzip -dc) ;;
      28b52ffd) decompress=(zstd -dcq) ;;
      *) fail "$kernel: unknown kernel compression (payload starts with $magic)" ;;
    esac
    tail -c +$((offset + 1)) "$kernel" | head -c "$length" >"$cache/payload.tmp" || true
    [ "$(stat -c %s "$cache/payload.tmp")" = "$length" ] || fail "$kernel: truncated payload"
    "${decompress[@]}" <"$cache/payload.tmp" >"$cache/vmlinux.tmp" ||
      fail "cannot decompress $kernel"
    "$cache/mkpvh" "$cache/vmlinux.tmp" "$image.tmp" || fail "cannot pack $kernel for PVH"
    rm -f "$cache/payload.tmp" "$cache/vmlinux.tmp" "$cache"/kernel-*.pvh
    mv "$image.tmp" "$image"
  fi
fi

# --- this run: initramfs, ISO, bochsrc ---
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/run-in-bochs.XXXXXX")
bochs_pid=
tail_pid=
# shellcheck disable=SC2317 # (called by the trap)
cleanup() {
  if [ -n "$bochs_pid" ]; then
    kill "$bochs_pid" 2>/dev/null || true
    wait "$bochs_pid" 2>/dev/null || true
  fi
  if [ -n "$tail_pid" ]; then kill "$tail_pid" 2>/dev/null || true; fi
  if [ "${BOCHS_KEEP:-0}" = 1 ]; then
    echo "$self: kept $run_dir" >&2
  else
    rm -rf "$run_dir"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

root=$run_dir/root
iso=$run_dir/iso
mkdir -p "$root/bochs" "$root/work" "$iso"
cp "$cache/init" "$root/init"
name=$(basename "$binary")
cp "$binary" "$root/work/$name"
chmod 755 "$root/work/$name"
for f in ${BOCHS_FILES:-}; do
  cp -r "$f" "$root/work/" || fail "cannot copy $f"
done
printf '%s\0' "/work/$name" "$binary" "$@" >"$root/bochs/argv"
{
  printf '%s\0' ${envs[@]+"${envs[@]}"}
  for default in PATH=/work:/ HOME=/work TERM=dumb; do
    given=0
    for e in ${envs[@]+"${envs[@]}"}; do
      if [ "${e%%=*}" = "${default%%=*}" ]; then given=1; fi
    done
    if [ "$given" = 0 ]; then printf '%s\0' "$default"; fi
  done
} >"$root/bochs/env"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
  >"$iso/initrd.img"
rm -rf "$root"

# For speed: no crypto self-tests (~20 s), no read-only remapping of kernel data and its W+X
# check, no CPU bug mitigations.
cmdline="console=ttyS0,115200 rdinit=/init panic=0 mitigations=off cryptomgr.notests rodata=off"
cmdline+=" clearcpuid=pku,xsaves,xsavec,fsrm" # see the top of this file
if [ "$verbose" != 2 ]; then cmdline+=" quiet"; fi
cmdline+=" ${BOCHS_CMDLINE:-}"
syslinux=/usr/lib/syslinux/modules/bios
cp /usr/lib/ISOLINUX/isolinux.bin "$syslinux/ldlinux.c32" "$iso/"
if [ "$boot_mode" = pvh ]; then
  cp "$syslinux/mboot.c32" "$syslinux/libcom32.c32" "$cache/pvhboot.elf" "$iso/"
  kernel_graft=/vmlinux.pvh=$image
  boot_entry="KERNEL /mboot.c32
  APPEND /pvhboot.elf $cmdline --- /vmlinux.pvh --- /initrd.img"
else
  kernel_graft=/vmlinuz=$kernel
  boot_entry="KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND $cmdline nokaslr"
fi
cat >"$iso/isolinux.cfg" <<EOF
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  $boot_entry
EOF
xorriso -as mkisofs -quiet -o "$run_dir/boot.iso" -b isolinux.bin -c boot.cat -no-emul-boot \
  -boot-load-size 4 -boot-info-table -graft-points "$iso" "$kernel_graft" \
  2>"$run_dir/xorriso.log" || { cat "$run_dir/xorriso.log" >&2; fail "xorriso failed"; }
rm -rf "$iso"

# Debian builds Bochs without the "nogui" display and with its debugger: the VNC server (rfb)
# with no wait for a client serves as the headless display, and the debugger is told to continue
# (-rc), its prompt then reading /dev/null, so a debugger stop ends Bochs.
cat >"$run_dir/bochsrc" <<EOF
display_library: rfb, options="timeout=0"
config_interface: textconfig
megs: $mem
cpu: model=$cpu_model, count=1, ips=$ips, reset_on_triple_fault=0
clock: sync=none, time0=local
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
pci: enabled=1, chipset=i440fx
ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14
ata0-master: type=cdrom, path=$run_dir/boot.iso, status=inserted
boot: cdrom
floppy_bootsig_check: disabled=1
com1: enabled=1, mode=file, dev=$run_dir/serial.log
speaker: enabled=0
sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy
mouse: enabled=0
log: $run_dir/bochs.log
panic: action=fatal
error: action=report
info: action=report
debug: action=ignore
EOF
echo c >"$run_dir/debugger.rc"
: >"$run_dir/serial.log"

# timeout(1) as a backstop: Bochs dies even when this script is killed without its traps.
t0=$EPOCHREALTIME
timeout -k 10 $((timeout_s + 30)) bochs-bin -q -f "$run_dir/bochsrc" -rc "$run_dir/debugger.rc" \
  </dev/null >"$run_dir/bochs.out" 2>&1 &
bochs_pid=$!
exec 3< <(exec tail -n +1 -f --pid="$bochs_pid" "$run_dir/serial.log" 2>/dev/null)
tail_pid=$!

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
deadline=$((SECONDS + timeout_s))
begun=0
boot_log=()
status=
partial=
eof=0
while [ -z "$status" ]; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    what=booting
    if [ "$begun" = 1 ]; then what="running $name"; fi
    echo "$self: timeout: no exit status after ${timeout_s} s ($what); killed bochs" >&2
    exit 124
  fi
  if IFS= read -r -t 1 line <&3; then
    line=$partial$line
    partial=
  else
    if [ $? -gt 128 ]; then # timed out: keep the partial line
      partial+=$line
      continue
    fi
    line=$partial$line # end of file: bochs has exited
    partial=
    eof=1
    [ -n "$line" ] || break
  fi
  line=${line%$'\r'}
  if [ "$begun" = 0 ]; then
    if [[ $line == *@@BOCHS-BEGIN@@* ]]; then
      begun=1
      boot_s=$(elapsed "$t0")
      t1=$EPOCHREALTIME
      if [ "$verbose" != 0 ]; then echo "$self: booted in $boot_s s" >&2; fi
    else
      if [ "$verbose" = 2 ]; then printf '[%6ss] %s\n' "$(elapsed "$t0")" "$line" >&2; fi
      boot_log+=("$line")
      if [[ $line == *"Kernel panic - "* ]]; then
        if [ "$verbose" != 2 ]; then printf '%s\n' "${boot_log[@]: -40}" >&2; fi
        fail "the guest kernel panicked while booting"
      fi
    fi
  elif [[ $line =~ ^(.*)@@BOCHS-EXIT-STATUS=([0-9]+)@@ ]]; then
    if [ -n "${BASH_REMATCH[1]}" ]; then printf '%s\n' "${BASH_REMATCH[1]}"; fi
    status=${BASH_REMATCH[2]}
  else
    printf '%s\n' "$line"
    if [[ $line == *"Kernel panic - not syncing"* ]]; then fail "the guest kernel panicked"; fi
  fi
  if [ "$eof" = 1 ]; then break; fi
done

if [ -z "$status" ]; then
  if [ "$begun" = 0 ] && [ "$verbose" != 2 ] && [ ${#boot_log[@]} -gt 0 ]; then
    echo "$self: the guest's console:" >&2
    printf '%s\n' "${boot_log[@]: -40}" >&2
  fi
  echo "$self: bochs said:" >&2
  grep -E '>>PANIC<<|exiting' "$run_dir/bochs.out" "$run_dir/bochs.log" 2>/dev/null |
    tail -n 10 >&2 || true
  fail "bochs exited before $name finished"
fi
if [ "$verbose" != 0 ]; then
  echo "$self: $name exited with status $status after $(elapsed "$t1") s (boot $boot_s s)" >&2
fi
exit "$status"
