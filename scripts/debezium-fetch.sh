#!/usr/bin/env bash
# Fetches the Debezium Server distribution (Maven artifact io.debezium:debezium-server-dist, type tar.gz)
# with mvn into a cache folder, checks its SHA-1 against the .sha1 published beside it, and unpacks it.
# Prints the path of the unpacked debezium-server/ folder.
#
# Why wagon's download-single and not dependency:get: the 3.6.0.Final dist pom names a parent pom
# (io.debezium:debezium-server:3.6.0.Final) that is not published, so every resolver-based goal fails to
# read the artifact descriptor. The archive itself is published; we download the file by its repository
# path. The repository URL is read from Maven's own super-POM, so no host is written here.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
version=${DEBEZIUM_VERSION:-$(cat "$here/debezium/VERSION")}
cache=${CDCACHE_CACHE_DIR:-$HOME/.cache/cdcache}
dest="$cache/debezium-$version"
mkdir -p "$cache"

if [ -x "$dest/debezium-server/run.sh" ]; then
    echo "$dest/debezium-server"
    exit 0
fi

mvn_q() { mvn -B -q -ntp -Dstyle.color=never "$@"; }
tmp=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
repo=$(cd "$tmp" && mvn_q help:evaluate -Dexpression='project.repositories[0].url' -DforceStdout | tr -d '\r' | sed 's/\x1b\[[0-9;]*m//g' | tail -n 1)
case "$repo" in http*) ;; *) echo "debezium-fetch: cannot read Maven's central repository URL" >&2; exit 1 ;; esac
path="io/debezium/debezium-server-dist/$version/debezium-server-dist-$version.tar.gz"
echo "debezium-fetch: fetching io.debezium:debezium-server-dist:$version:tar.gz with mvn" >&2
for f in "$path" "$path.sha1"; do
    (cd "$tmp" && mvn_q org.codehaus.mojo:wagon-maven-plugin:2.0.2:download-single \
        -Dwagon.url="$repo" -Dwagon.fromFile="$f" -Dwagon.toFile="$tmp/$(basename "$f")") >&2
done
want=$(cut -c1-40 "$tmp/debezium-server-dist-$version.tar.gz.sha1")
got=$(sha1sum "$tmp/debezium-server-dist-$version.tar.gz" | cut -c1-40)
if [ "$want" != "$got" ]; then
    echo "debezium-fetch: checksum mismatch ($got, expected $want)" >&2
    exit 1
fi
mkdir -p "$tmp/unpacked"
tar -xzf "$tmp/debezium-server-dist-$version.tar.gz" -C "$tmp/unpacked"
rm -rf "$dest"
mv "$tmp/unpacked" "$dest"
echo "$dest/debezium-server"
