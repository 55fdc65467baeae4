#!/usr/bin/env bash
# Builds the Debian package of dynobs from a build tree:
#
#   scripts/package.sh [BUILD_DIR] [OUT_DIR]     (defaults: build, build/package)
#
# The build tree is installed under /usr into a staging root (cmake --install
# with DESTDIR), binaries stripped, and the package's own files added: the
# Python package where Debian's python3 finds it, the exporter's systemd unit
# and its /etc/default/dynobs, the copyright and changelog, lintian
# overrides (deploy/debian/). Depends: is computed from the binaries by
# dpkg-shlibdeps. Prints the path of the .deb. `lintian` is not run here;
# tests/integration/test_package.py runs it.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(realpath "${1:-build}")
out=$(realpath -m "${2:-$build/package}")
[[ -x $build/libdynobs.so || -e $build/libdynobs.so ]] || {
  echo "no build in $build (cmake -S . -B build && cmake --build build)" >&2
  exit 2
}
for t in dpkg-deb dpkg-shlibdeps strip gzip; do
  command -v "$t" >/dev/null || { echo "$t is missing (Debian: dpkg-dev binutils)" >&2; exit 2; }
done

version=$(sed -n 's/^project(dynobs VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
pkgver=$version-1
work=$(mktemp -d /tmp/dynobs-package-XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root" "$out"

# The build tree's install rules, under /usr. Its library directory must be
# Debian's multiarch one (the top-level CMakeLists.txt sets it).
DESTDIR=$root cmake --install "$build" --prefix /usr >/dev/null
test -e "$root/usr/lib/$multiarch/libdynobs.so" || {
  echo "the build installs its library elsewhere than /usr/lib/$multiarch" >&2
  exit 1
}

# The Python package, for Debian's python3 (its C module when the build made
# one for that interpreter; the ctypes path otherwise).
py=$root/usr/lib/python3/dist-packages/dynobs
mkdir -p "$py"
install -m 0644 "$src"/python/dynobs/*.py "$py/"
if [[ -x /usr/bin/python3 ]]; then
  suffix=$(/usr/bin/python3 -c 'import importlib.machinery as m; print(m.EXTENSION_SUFFIXES[0])')
  if [[ -f $build/python/_native$suffix ]]; then
    install -m 0644 "$build/python/_native$suffix" "$py/_native$suffix"
  fi
fi

# The exporter as a service, disabled until the operator enables it.
install -D -m 0644 "$src/deploy/systemd/dynobs-exporter.service" \
  "$root/lib/systemd/system/dynobs-exporter.service"
install -D -m 0644 "$src/deploy/systemd/dynobs.default" "$root/etc/default/dynobs"
# What operators wire around it.
for f in grafana/dashboards/dynobs-red.json grafana/provisioning/dashboards/dynobs.yml \
         grafana/provisioning/datasources/prometheus.yml prometheus/dynobs-rules.yml \
         prometheus/dynobs-rules.test.yml prometheus/prometheus.yml otelcol/config.yaml; do
  install -D -m 0644 "$src/deploy/$f" "$root/usr/share/dynobs/deploy/$f"
done

doc=$root/usr/share/doc/dynobs
install -D -m 0644 "$src/deploy/debian/copyright" "$doc/copyright"
gzip -9n -c "$src/README.md" >"$doc/README.md.gz"
{
  echo "dynobs ($pkgver) unstable; urgency=medium"
  echo
  echo "  * Built from the source tree by scripts/package.sh."
  echo
  echo " -- dynobs team <team@dynobs.dev>  $(date -R -d @"${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$doc/changelog.Debian.gz"
install -D -m 0644 "$src/deploy/debian/lintian-overrides" "$root/usr/share/lintian/overrides/dynobs"

# Stripped as Debian ships them; files owned by root, no group write.
find "$root" -type f \( -name '*.so*' -o -perm -u+x \) -exec sh -c \
  'file -b "$1" | grep -q ELF && strip --strip-unneeded --remove-section=.comment --remove-section=.note "$1"' _ {} \;
chmod -R u+rwX,go+rX,go-w "$root"

# Depends from the binaries (dpkg-shlibdeps wants a debian/control beside it).
mkdir -p "$work/src/debian"
printf 'Source: dynobs\n\nPackage: dynobs\nArchitecture: any\n' >"$work/src/debian/control"
elves=$(find "$root" -type f -exec sh -c 'file -b "$1" | grep -q ELF && echo "$1"' _ {} \;)
# shellcheck disable=SC2086
depends=$(cd "$work/src" && dpkg-shlibdeps -O -l"$root/usr/lib/$multiarch" $elves 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { echo "dpkg-shlibdeps found no dependencies" >&2; exit 1; }

mkdir -p "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: dynobs
Version: $pkgver
Architecture: $arch
Maintainer: dynobs team <team@dynobs.dev>
Installed-Size: $size
Depends: $depends
Recommends: python3
Suggests: prometheus
Section: utils
Priority: optional
Description: zero-code tracing and RED metrics for Linux services
 LD_PRELOAD=libdynobs.so (or dynobs-run) gives any dynamically linked
 service distributed traces and RED metrics with no code change: HTTP/1,
 HTTP/2, gRPC and PostgreSQL calls through sockets, OpenSSL, libcurl and
 libpq, with W3C trace context propagated. dynobs-exporter drains every
 traced process to Prometheus and OTLP/HTTP, and can trace processes that
 cannot be preloaded through eBPF.
EOF
echo /etc/default/dynobs >"$root/DEBIAN/conffiles"
echo "activate-noawait ldconfig" >"$root/DEBIAN/triggers"
printf 'libdynobs 0 dynobs (>= %s)\nlibdynobs-noop 0 dynobs (>= %s)\n' "$version" "$version" \
  >"$root/DEBIAN/shlibs"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root"/DEBIAN/*

deb=$out/dynobs_${pkgver}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
