#!/usr/bin/env bash
# Prepares what mapwalk's real-kernel tests need, on a Debian bookworm machine:
#   - host packages: qemu-system-x86, busybox-static, cpio, gcc + static glibc;
#   - guest kernels, downloaded as Debian packages and unpacked into the cache, each
#     with its uncompressed ELF image (`vmlinux` beside `vmlinuz`: symbols and .BTF of
#     the exact kernel, for tests that read a kernel image rather than guest memory);
#   - the guest initramfs (static busybox + guest/init.c), rebuilt when its inputs change.
#
# Cache: ${MAPWALK_E2E_CACHE:-$HOME/.cache/mapwalk-e2e}. Idempotent; on a warm cache it
# runs no apt command and takes a fraction of a second. MAPWALK_E2E_REFRESH=1 looks for
# newer kernel packages again.
#
# Usage: setup.sh [KERNEL...]   (default: every x86_64 kernel below; the arm64 ones,
# deb13-arm64, deb13-arm64-16k and deb12-arm64, when named, which also prints
# `initramfs-arm64 PATH`, and `system-map NAME PATH` for a kernel with a System.map)
# Prints, on stdout, one line per asset (logs go to stderr):
#   initramfs PATH
#   kernel NAME RELEASE PATH
#   system-map NAME PATH   (an arm64 kernel whose System.map is kept)
# Exit status: 0 ready; 2 a prerequisite could not be had (not root, no package
# registry, package missing); anything else is a bug or an unexpected failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${MAPWALK_E2E_CACHE:-$HOME/.cache/mapwalk-e2e}

log() { printf 'setup.sh: %s\n' "$*" >&2; }
missing() {
	log "missing prerequisite: $*"
	exit 2
}

mkdir -p "$cache" || missing "cannot create the cache directory $cache"
# Test processes may run this concurrently: one at a time.
exec 9>"$cache/.lock"
flock 9

# ---------------------------------------------------------------------------------------
# Host packages.

# apt_update [APT-OPTION...]: `apt-get update` once per set of options (the system's
# sources, or a private sources directory).
apt_updated=()
apt_update() {
	local key="$*"
	local k
	for k in "${apt_updated[@]}"; do
		[ "$k" = "$key" ] && return 0
	done
	[ "$(id -u)" = 0 ] || missing "root, to run apt-get (or install the packages by hand)"
	log "apt-get update $*"
	apt-get "$@" update -qq >&2 || missing "Debian package lists (apt-get $* update failed)"
	apt_updated+=("$key")
}

pkgs=()
command -v qemu-system-x86_64 >/dev/null || pkgs+=(qemu-system-x86)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || pkgs+=(busybox-static)
command -v cpio >/dev/null || pkgs+=(cpio)
command -v lz4 >/dev/null || pkgs+=(lz4)
command -v zstd >/dev/null || pkgs+=(zstd)
command -v bpftool >/dev/null || [ -x /usr/sbin/bpftool ] || pkgs+=(bpftool)
command -v gcc >/dev/null || pkgs+=(gcc)
# The full-screen `watch` is tested as a person sees it, under tmux.
command -v tmux >/dev/null || pkgs+=(tmux)
[ -f "$(gcc -print-file-name=libc.a 2>/dev/null || true)" ] || pkgs+=(libc6-dev)
if [ ${#pkgs[@]} -gt 0 ]; then
	apt_update
	log "apt-get install ${pkgs[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 ||
		missing "Debian packages ${pkgs[*]}"
fi

# ---------------------------------------------------------------------------------------
# Guest kernels.
#
# A kernel is a name, a regular expression for its package names (the newest version
# that matches wins, resolved at run time) and, for kernels outside the system's apt
# sources, the apt options of a private sources/lists directory. Adding a kernel is a
# function of a few lines and one entry in `all_kernels`.

# fetch_kernel NAME PACKAGE-REGEX [APT-OPTION...]
fetch_kernel() {
	local name=$1 regex=$2
	shift 2
	local dir="$cache/kernels/$name"
	if [ -s "$dir/vmlinuz" ] && [ -s "$dir/release" ] && [ -z "${MAPWALK_E2E_REFRESH:-}" ]; then
		return 0
	fi
	apt_update "$@"
	local pkg
	pkg=$(apt-cache "$@" search --names-only "$regex" | awk '{print $1}' | sort -V | tail -n 1)
	[ -n "$pkg" ] || missing "a Debian package matching $regex"
	local release=${pkg#linux-image-}
	release=${release%-unsigned}
	if [ -s "$dir/vmlinuz" ] && [ "$(cat "$dir/release")" = "$release" ]; then
		return 0
	fi
	log "downloading $pkg"
	local tmp
	tmp=$(mktemp -d "$cache/.kernel.XXXXXX")
	(cd "$tmp" && apt-get "$@" -o APT::Sandbox::User=root download -qq "$pkg" >&2) || {
		rm -rf "$tmp"
		missing "package $pkg (apt-get download failed)"
	}
	mkdir "$tmp/x" "$tmp/out"
	dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp/x" --wildcards './boot/*'
	cp "$tmp/x/boot/vmlinuz-$release" "$tmp/out/vmlinuz"
	cp "$tmp/x/boot/config-$release" "$tmp/out/config"
	echo "$release" >"$tmp/out/release"
	rm -rf "$dir"
	mkdir -p "$(dirname "$dir")"
	mv "$tmp/out" "$dir"
	rm -rf "$tmp"
	log "kernel $name: $release"
}

# extract_vmlinux DIR: DIR/vmlinux from DIR/vmlinuz (a bzImage whose payload is LZ4
# legacy, zstd, xz or gzip compressed), unless it is there already.
extract_vmlinux() {
	local dir=$1
	[ -s "$dir/vmlinux" ] && return 0
	log "extracting $dir/vmlinux"
	python3 - "$dir/vmlinuz" "$dir/vmlinux.tmp" <<'PY' || missing "an uncompressed image of $dir/vmlinuz"
import struct, subprocess, sys
src, dst = sys.argv[1], sys.argv[2]
d = open(src, "rb").read()
if d[0x202:0x206] != b"HdrS":
    sys.exit(f"{src}: not a bzImage")
# The setup header: setup_sects at 0x1f1, payload_offset/length at 0x248.
setup = ((d[0x1F1] or 4) + 1) * 512
off, length = struct.unpack_from("<II", d, 0x248)
payload = d[setup + off : setup + off + length]
tools = {b"\x02\x21\x4c\x18": ["lz4", "-dc"], b"\x28\xb5\x2f\xfd": ["zstd", "-dcq"],
         b"\xfd7zXZ": ["xz", "-dcq"], b"\x1f\x8b": ["gzip", "-dcq"]}
tool = next((t for m, t in tools.items() if payload.startswith(m)), None)
if tool is None:
    sys.exit(f"{src}: unknown payload compression {payload[:6].hex()}")
# The kernel appends the uncompressed size after the stream: the tools may complain
# about those bytes (and exit non-zero) after writing everything, so judge the output.
out = subprocess.run(tool, input=payload, capture_output=True).stdout
if out[:4] != b"\x7fELF" or len(out) < 1 << 20:
    sys.exit(f"{src}: {tool[0]} gave no ELF image")
open(dst, "wb").write(out)
PY
	mv "$dir/vmlinux.tmp" "$dir/vmlinux"
}

# Debian 12 (bookworm) cloud kernel, Linux 6.1.
kernel_deb12_cloud() {
	fetch_kernel deb12-cloud '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$'
}

# Apt options for a private view of one Debian suite: its own sources, lists and
# package cache under the cache directory; the system's sources stay untouched.
# Sets the array `suite_apt`.
private_suite() {
	local suite=$1
	local d="$cache/apt/${2:-$suite}"
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/sources.list.d"
	local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	cat >"$d/sources.list" <<EOF
deb [signed-by=$keyring] http://deb.debian.org/debian $suite main
deb [signed-by=$keyring] http://deb.debian.org/debian $suite-updates main
deb [signed-by=$keyring] http://deb.debian.org/debian-security $suite-security main
EOF
	suite_apt=(
		-o "Dir::Etc::SourceList=$d/sources.list"
		-o "Dir::Etc::SourceParts=$d/sources.list.d"
		-o "Dir::State::Lists=$d/lists"
		-o "Dir::Cache=$d/cache"
		-o "APT::Sandbox::User=root"
	)
}

# Debian 13 (trixie) cloud kernel, Linux 6.12.
kernel_deb13_cloud() {
	private_suite trixie
	fetch_kernel deb13-cloud '^linux-image-6\.12\.[0-9]+\+deb13(u[0-9]+)?-cloud-amd64-unsigned$' "${suite_apt[@]}"
}

all_kernels=(deb12-cloud deb13-cloud)

# ---------------------------------------------------------------------------------------
# arm64 guests (only when named: `setup.sh deb13-arm64`): qemu-system-aarch64, the cross
# compiler for the static /init, Debian's arm64 kernel from a private arm64 view of
# trixie, and an initramfs of their own.

arm64_host_packages() {
	local pkgs=()
	command -v qemu-system-aarch64 >/dev/null || pkgs+=(qemu-system-arm)
	command -v aarch64-linux-gnu-gcc >/dev/null || pkgs+=(gcc-aarch64-linux-gnu)
	[ -f "$(aarch64-linux-gnu-gcc -print-file-name=libc.a 2>/dev/null || true)" ] ||
		pkgs+=(libc6-dev-arm64-cross)
	[ ${#pkgs[@]} -gt 0 ] || return 0
	apt_update
	log "apt-get install ${pkgs[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 ||
		missing "Debian packages ${pkgs[*]}"
}

# Debian 13 (trixie) arm64 kernel, Linux 6.12, 4 KiB pages. Its own apt directory: the
# package lists of another architecture.
kernel_deb13_arm64() {
	private_suite trixie trixie-arm64
	suite_apt+=(-o APT::Architectures=arm64 -o APT::Architecture=arm64)
	fetch_kernel deb13-arm64 '^linux-image-6\.12\.[0-9]+\+deb13(u[0-9]+)?-arm64-unsigned$' "${suite_apt[@]}"
	arm64_image "$cache/kernels/deb13-arm64"
}

# Debian 13 arm64 kernel with 16 KiB pages (`arm64-16k`), Linux 6.12.
kernel_deb13_arm64_16k() {
	private_suite trixie trixie-arm64
	suite_apt+=(-o APT::Architectures=arm64 -o APT::Architecture=arm64)
	fetch_kernel deb13-arm64-16k '^linux-image-6\.12\.[0-9]+\+deb13(u[0-9]+)?-arm64-16k-unsigned$' "${suite_apt[@]}"
	arm64_image "$cache/kernels/deb13-arm64-16k"
}

# Debian 12 (bookworm) arm64 kernel, Linux 6.1, 4 KiB pages, 48-bit VAs. Built without
# CONFIG_KALLSYMS_ALL: its symbol table (in memory and in /proc/kallsyms) has no data
# symbols, so the tests give its System.map. The one in the linux-image package is a stub
# ("The real System.map is in the linux-image-<version>-dbg package"): the real one comes
# from the -dbg package (~800 MB, downloaded once; its System.map and vmlinux are kept).
kernel_deb12_arm64() {
	private_suite bookworm bookworm-arm64
	suite_apt+=(-o APT::Architectures=arm64 -o APT::Architecture=arm64)
	fetch_kernel deb12-arm64 '^linux-image-6\.1\.0-[0-9]+-arm64-unsigned$' "${suite_apt[@]}"
	arm64_image "$cache/kernels/deb12-arm64"
	dbg_symbols "$cache/kernels/deb12-arm64" "${suite_apt[@]}"
}

# dbg_symbols DIR [APT-OPTION...]: DIR/System.map and DIR/vmlinux (link-time symbols, the
# debug-info image) from the kernel's -dbg package, unless they are there already.
dbg_symbols() {
	local dir=$1
	shift
	[ -s "$dir/System.map" ] && [ -s "$dir/vmlinux" ] && return 0
	local release
	release=$(cat "$dir/release")
	local pkg="linux-image-$release-dbg"
	apt_update "$@"
	log "downloading $pkg (its System.map and vmlinux)"
	local tmp
	tmp=$(mktemp -d "$cache/.dbg.XXXXXX")
	(cd "$tmp" && apt-get "$@" download -qq "$pkg" >&2) || {
		rm -rf "$tmp"
		missing "package $pkg (apt-get download failed)"
	}
	mkdir "$tmp/x"
	dpkg-deb --fsys-tarfile "$tmp"/*.deb |
		tar -x -C "$tmp/x" "./usr/lib/debug/boot/System.map-$release" "./usr/lib/debug/boot/vmlinux-$release" || {
		rm -rf "$tmp"
		missing "System.map-$release and vmlinux-$release in $pkg"
	}
	# A real map names map_idr (the stub in the linux-image package names nothing).
	grep -q ' map_idr$' "$tmp/x/usr/lib/debug/boot/System.map-$release" || {
		rm -rf "$tmp"
		missing "map_idr in the System.map of $pkg"
	}
	mv "$tmp/x/usr/lib/debug/boot/vmlinux-$release" "$dir/vmlinux"
	mv "$tmp/x/usr/lib/debug/boot/System.map-$release" "$dir/System.map"
	rm -rf "$tmp"
}

# arm64_image DIR: DIR/Image, the uncompressed arm64 kernel image QEMU's -kernel loads,
# from DIR/vmlinuz (gzip, or an EFI zboot image with a gzip or zstd payload).
arm64_image() {
	local dir=$1
	[ -s "$dir/Image" ] && return 0
	log "unpacking $dir/Image"
	python3 - "$dir/vmlinuz" "$dir/Image.tmp" <<'PY' || missing "an arm64 Image from $dir/vmlinuz"
import struct, subprocess, sys
src, dst = sys.argv[1], sys.argv[2]
d = open(src, "rb").read()
if d[:2] == b"\x1f\x8b":
    tool, payload = ["gzip", "-dcq"], d
elif d[:2] == b"MZ" and d[4:8] == b"zimg":
    off, size = struct.unpack_from("<II", d, 8)
    kind = d[0x18:0x20].rstrip(b"\0").decode()
    tool = {"gzip": ["gzip", "-dcq"], "zstd22": ["zstd", "-dcq"], "zstd": ["zstd", "-dcq"]}.get(kind)
    if tool is None:
        sys.exit(f"{src}: zboot payload {kind!r}")
    payload = d[off : off + size]
else:
    tool, payload = None, d
out = subprocess.run(tool, input=payload, capture_output=True).stdout if tool else payload
# The arm64 Image header: magic "ARM\x64" at 0x38.
if out[0x38:0x3C] != b"ARM\x64":
    sys.exit(f"{src}: no arm64 Image inside")
open(dst, "wb").write(out)
PY
	mv "$dir/Image.tmp" "$dir/Image"
}

# $cache/busybox-arm64: Debian's static busybox for arm64 (the in-guest runs' sha256sum),
# from the private arm64 view of trixie.
arm64_busybox() {
	[ -s "$cache/busybox-arm64" ] && return 0
	private_suite trixie trixie-arm64
	suite_apt+=(-o APT::Architectures=arm64 -o APT::Architecture=arm64)
	[ -d "$cache/apt/trixie-arm64/lists" ] && ls "$cache/apt/trixie-arm64/lists/"*Packages* >/dev/null 2>&1 ||
		apt_update "${suite_apt[@]}"
	local tmp
	tmp=$(mktemp -d "$cache/.busybox.XXXXXX")
	(cd "$tmp" && apt-get "${suite_apt[@]}" download -qq busybox-static >&2) || {
		rm -rf "$tmp"
		missing "package busybox-static (arm64)"
	}
	dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/x"
	# Under /usr/bin in trixie (merged /usr), /bin in older suites.
	cp "$tmp/x/usr/bin/busybox" "$cache/busybox-arm64.tmp" 2>/dev/null ||
		cp "$tmp/x/bin/busybox" "$cache/busybox-arm64.tmp"
	mv "$cache/busybox-arm64.tmp" "$cache/busybox-arm64"
	rm -rf "$tmp"
}

# The arm64 initramfs: /init cross-built static for aarch64, its data sections on the
# console (ttyAMA0: `virt` has one UART), and Debian's static arm64 busybox.
build_initramfs_arm64() {
	local out="$cache/initramfs-arm64.cpio.gz"
	arm64_busybox
	local stamp
	stamp=$(
		{
			echo "recipe arm64 2"
			cat "$here"/guest/*
			sha256sum "$cache/busybox-arm64"
			aarch64-linux-gnu-gcc --version | head -n 1
		} | sha256sum | cut -d' ' -f1
	)
	if [ -s "$out" ] && [ "$(cat "$cache/initramfs-arm64.stamp" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	log "building the arm64 initramfs"
	local tmp
	tmp=$(mktemp -d "$cache/.initramfs.XXXXXX")
	local root="$tmp/root"
	mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,run}
	aarch64-linux-gnu-gcc -static -O2 -Wall -Wextra -DDATA_PORT='"/dev/ttyAMA0"' \
		-o "$root/init" "$here"/guest/*.c
	cp "$cache/busybox-arm64" "$root/bin/busybox"
	ln -s busybox "$root/bin/sh"
	(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) |
		gzip -6n >"$tmp/initramfs.cpio.gz"
	mv "$tmp/initramfs.cpio.gz" "$out"
	echo "$stamp" >"$cache/initramfs-arm64.stamp"
	rm -rf "$tmp"
}

# ---------------------------------------------------------------------------------------
# The initramfs: /init (guest/init.c, static) and a static busybox for debugging.

build_initramfs() {
	local out="$cache/initramfs.cpio.gz"
	local busybox
	busybox=$(command -v busybox)
	local stamp
	stamp=$(
		{
			echo "recipe 1"
			cat "$here"/guest/*
			sha256sum "$busybox"
			gcc --version | head -n 1
		} | sha256sum | cut -d' ' -f1
	)
	if [ -s "$out" ] && [ "$(cat "$cache/initramfs.stamp" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	log "building the initramfs"
	local tmp
	tmp=$(mktemp -d "$cache/.initramfs.XXXXXX")
	local root="$tmp/root"
	mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,run}
	gcc -static -O2 -Wall -Wextra -o "$root/init" "$here"/guest/*.c
	cp "$busybox" "$root/bin/busybox"
	ln -s busybox "$root/bin/sh"
	(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) |
		gzip -6n >"$tmp/initramfs.cpio.gz"
	mv "$tmp/initramfs.cpio.gz" "$out"
	echo "$stamp" >"$cache/initramfs.stamp"
	rm -rf "$tmp"
}

# ---------------------------------------------------------------------------------------

kernels=("$@")
arm64=
[ ${#kernels[@]} -gt 0 ] || kernels=("${all_kernels[@]}")
for k in "${kernels[@]}"; do
	case $k in
	deb12-cloud) kernel_deb12_cloud ;;
	deb13-cloud) kernel_deb13_cloud ;;
	deb13-arm64)
		arm64_host_packages
		kernel_deb13_arm64
		arm64=1
		;;
	deb13-arm64-16k)
		arm64_host_packages
		kernel_deb13_arm64_16k
		arm64=1
		;;
	deb12-arm64)
		arm64_host_packages
		kernel_deb12_arm64
		arm64=1
		;;
	*)
		log "unknown kernel $k (known: ${all_kernels[*]})"
		exit 1
		;;
	esac
done
for k in "${kernels[@]}"; do
	case $k in
	*-arm64 | *-arm64-*) ;;
	*) extract_vmlinux "$cache/kernels/$k" ;;
	esac
done
build_initramfs
[ -z "$arm64" ] || build_initramfs_arm64

echo "initramfs $cache/initramfs.cpio.gz"
[ -z "$arm64" ] || echo "initramfs-arm64 $cache/initramfs-arm64.cpio.gz"
for k in "${kernels[@]}"; do
	case $k in
	*-arm64 | *-arm64-*)
		echo "kernel $k $(cat "$cache/kernels/$k/release") $cache/kernels/$k/Image"
		[ ! -s "$cache/kernels/$k/System.map" ] || echo "system-map $k $cache/kernels/$k/System.map"
		;;
	*) echo "kernel $k $(cat "$cache/kernels/$k/release") $cache/kernels/$k/vmlinuz" ;;
	esac
done
