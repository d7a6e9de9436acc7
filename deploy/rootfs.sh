#!/bin/sh
# Assemble the final image's root filesystem in the Dockerfile's build stage (Debian bookworm,
# merged /usr): only what pycoredns runs on.
#
#   sh deploy/rootfs.sh ROOT [NODECACHE]     NODECACHE=1 adds ip and iptables/ip6tables (-localip)
#
# - the interpreter and its standard library, bytecode compiled, without the parts a server never
#   imports (tests, IDLE, tkinter, curses, readline, dbm, sqlite3, lib2to3, ensurepip, ...);
# - the venv /opt/pycoredns (already bytecode compiled) with the launcher;
# - every shared library those load, found with ldd, copied under its real /usr path;
# - CA certificates, passwd/group with root and nonroot (65532), /tmp, /run.
set -eu
root=$1
nodecache=${2:-0}
py=/usr/bin/python3.11
stdlib=/usr/lib/python3.11
arch=$(dirname "$(readlink -f /usr/lib/*-linux-gnu/libc.so.6)")

mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib" "$root/usr/lib64" "$root/etc/ssl/certs" \
    "$root/opt" "$root/run" "$root/home/nonroot"
for d in bin sbin lib lib64; do ln -sfn "usr/$d" "$root/$d"; done
install -d -m 1777 "$root/tmp"
chown 65532:65532 "$root/home/nonroot"

# The standard library: compiled in place (so the bytecode names /usr paths), then copied. Hash-based
# bytecode: valid whatever the copies do to modification times.
python3 -m compileall -q -j0 -f --invalidation-mode unchecked-hash "$stdlib" || true
cp -a "$py" "$root/usr/bin/"
ln -sfn python3.11 "$root/usr/bin/python3"
cp -a "$stdlib" "$root/usr/lib/"
for p in test idlelib tkinter turtledemo turtle.py lib2to3 ensurepip pydoc_data curses dbm sqlite3 \
         distutils venv config-3.11-*; do
    rm -rf "$root$stdlib"/$p
done
rm -f "$root$stdlib"/lib-dynload/_curses* "$root$stdlib"/lib-dynload/readline* \
      "$root$stdlib"/lib-dynload/_dbm* "$root$stdlib"/lib-dynload/_gdbm* "$root$stdlib"/lib-dynload/_sqlite3* \
      "$root$stdlib"/lib-dynload/_tkinter* "$root$stdlib"/lib-dynload/nis* "$root$stdlib"/lib-dynload/_test*
find "$root$stdlib" -name '*.opt-[12].pyc' -delete

cp -a /opt/pycoredns "$root/opt/"
elfs="$root$py $root/opt/pycoredns/bin/pycoredns"

if [ "$nodecache" = 1 ]; then
    cp -a /usr/bin/ip "$root/usr/bin/"
    cp -a /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/sbin/iptables* /usr/sbin/ip6tables* \
        "$root/usr/sbin/"
    mkdir -p "$root/etc/alternatives" "$root$arch"
    cp -a /etc/alternatives/iptables* /etc/alternatives/ip6tables* "$root/etc/alternatives/"
    cp -a "$arch/xtables" "$root$arch/"
    cp -a /etc/iproute2 /etc/protocols /etc/services "$root/etc/" 2>/dev/null || true
    elfs="$elfs $root/usr/bin/ip $root/usr/sbin/xtables-nft-multi $root/usr/sbin/xtables-legacy-multi"
fi

# Shared libraries of every ELF file shipped (ldd lists them recursively), under their real /usr path.
# ldd runs on the build stage's copy of each file (same path without ROOT).
for f in $elfs $(find "$root$stdlib/lib-dynload" "$root/opt/pycoredns" $([ "$nodecache" = 1 ] && echo "$root$arch") \
                 -name '*.so*' -type f); do
    ldd "${f#"$root"}"
done | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u | while read -r lib; do
    dir=$(readlink -f "$(dirname "$lib")")
    mkdir -p "$root$dir"
    [ -e "$root$dir/$(basename "$lib")" ] || cp -L "$lib" "$root$dir/$(basename "$lib")"
done

cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
mkdir -p "$root/usr/lib/ssl"
ln -sfn /etc/ssl/certs "$root/usr/lib/ssl/certs"
cp -a /etc/nsswitch.conf "$root/etc/"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"

# The image must start: the interpreter, the C extensions and the plugins import inside ROOT.
chroot "$root" /opt/pycoredns/bin/python -I -c "import ssl, ctypes, hashlib, lzma, bz2, decimal, uuid, \
yaml, aiohttp, multidict, yarl, kubernetes_asyncio.client, pycoredns.cli, pycoredns.directives as d
for name in d.available(): d.setup_function(name)"
