#!/usr/bin/env bash
# Builds the GPU bundle: a folder that travels to a GPU machine next to the working tree and
# runs there without building anything (bench/gpu/README.md).
# Usage (from the repository root; `make gpu-bundle` calls it): make_bundle.sh OUT PROGRAM...
#
#   OUT/<program>       each program, rpath $ORIGIN/lib (then /usr/local/cuda/lib64)
#   OUT/lib/            every shared library ldd lists for them that is not in
#                       gpu-provided-libraries.txt, rpath $ORIGIN; those over 4 MiB
#                       gzipped (NAME.gz; check.sh unpacks them first)
#   OUT/check.sh        the check script; OUT/tools/ its Python helpers and the benchmarks'
#   OUT/data/           the data and tokenizer the checks train on (from data/)
#   OUT/BUNDLE.txt      commit, date and the size of every file
# Fails when a library is not found, patchelf is missing, or OUT exceeds 48 MiB.
set -euo pipefail
MAX_BYTES=$((48 * 1024 * 1024))
GZIP_ABOVE=$((4 * 1024 * 1024))
HERE=bench/gpu
[ $# -ge 2 ] || { echo "usage: $0 OUT PROGRAM..." >&2; exit 2; }
out=$1; shift
command -v patchelf >/dev/null || { echo "make_bundle: patchelf is missing (make deps installs it)" >&2; exit 1; }

provided() { grep -qx -- "$1" <(grep -v '^#' $HERE/gpu-provided-libraries.txt); }

rm -rf "$out"
mkdir -p "$out/lib" "$out/tools" "$out/data"
for prog in "$@"; do
  cp "$prog" "$out/"
  # Every library the program needs, directly or through another library: "soname => path".
  while read -r soname arrow path _; do
    [ "$arrow" = "=>" ] || continue
    provided "$soname" && continue
    if [ "$path" = "not" ]; then
      echo "make_bundle: $prog needs $soname, which is not found here" >&2; exit 1
    fi
    [ -e "$out/lib/$soname" ] || cp -L "$path" "$out/lib/$soname"
  done < <(ldd "$prog")
done
for prog in "$@"; do
  patchelf --set-rpath '$ORIGIN/lib:/usr/local/cuda/lib64' "$out/$(basename "$prog")"
done
for lib in "$out"/lib/*; do
  chmod u+w "$lib"
  patchelf --set-rpath '$ORIGIN' "$lib"
  if [ "$(stat -c %s "$lib")" -gt $GZIP_ABOVE ]; then gzip -9 "$lib"; fi
done

cp $HERE/check.sh "$out/"
cp $HERE/gpu-provided-libraries.txt "$out/"
cp $HERE/check_tools.py $HERE/generate_hf.py bench/baseline_peft.py bench/compare.py "$out/tools/"
cp -r data/demo-tokenizer data/agentalign_sample.json "$out/data/"

{
  echo "agentlora GPU bundle"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$( [ -n "$(GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo +dirty)"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "files (bytes):"
  (cd "$out" && find . -type f ! -name BUNDLE.txt -printf '  %s %P\n' | sort -k2)
} > "$out/BUNDLE.txt"
bytes=$(du -sb "$out" | cut -f1)
echo "gpu-bundle: $out, $((bytes / 1024 / 1024)) MiB ($bytes bytes; limit $MAX_BYTES)"
if [ "$bytes" -gt $MAX_BYTES ]; then echo "make_bundle: $out exceeds 48 MiB" >&2; exit 1; fi
