#!/usr/bin/env bash
# publint and attw (--profile esm-only: our packages are ESM only) on the packed publishable packages, one line per
# package; fails on any publint error or warning and on any attw problem. attw checks every module entry
# ("@effect-atm/core/AccessToken", ...), not only ".": it does not expand the "./*" pattern by itself.
#
#   scripts/check-packages.sh              builds, packs into a temporary folder, checks (`npm run check:packages`)
#   scripts/check-packages.sh <folder>     checks the tarballs already packed there (scripts/consumer-test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(core oidc-login store-sql store-redis dev-identity testing)
bin=$PWD/node_modules/.bin
work=$(mktemp -d "${TMPDIR:-/tmp}/effect-atm-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

tarballs=${1:-}
if [ -z "$tarballs" ]; then
  npm run build --silent
  tarballs=$work/tarballs
  mkdir -p "$tarballs"
  for name in "${packages[@]}"; do npm pack "./packages/$name" --pack-destination "$tarballs" --silent >/dev/null; done
fi

status=0
for name in "${packages[@]}"; do
  version=$(node -p "require('./packages/$name/package.json').version")
  tarball=$tarballs/effect-atm-$name-$version.tgz
  [ -f "$tarball" ] || { echo "missing $tarball" >&2; exit 1; }

  publint_ok=1
  publint_out=$("$bin/publint" run "$tarball" --strict 2>&1) || publint_ok=0
  suggestions=$(grep -cE '^[0-9]+\. ' <<<"$publint_out" || true)
  if [ "$publint_ok" = 1 ]; then
    publint_summary="ok ($suggestions suggestions)"
  else
    publint_summary="FAILED"
  fi

  # the package's modules: the top-level JavaScript files in dist, as "./Module" entries
  modules=$(tar -tzf "$tarball" | sed -nE 's#^package/dist/([A-Za-z0-9]+)\.js$#./\1#p' | grep -v '^./index$' || true)
  attw_ok=1
  # shellcheck disable=SC2086 # one entry per word
  "$bin/attw" "$tarball" --profile esm-only --format json ${modules:+--include-entrypoints $modules} \
    >"$work/attw-$name.json" 2>"$work/attw-$name.err" || attw_ok=0
  attw_summary=$(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
    const ignored = new Set(["node10", "node16-cjs"]) // --profile esm-only
    const problems = (r.analysis.problems ?? []).filter((p) => !ignored.has(p.resolutionKind))
    const entries = Object.keys(r.analysis.entrypoints).filter((e) => !e.includes("*")).length
    console.log(`${problems.length === 0 ? "ok" : `${problems.length} problems`} (${entries} entrypoints)`)
  ' "$work/attw-$name.json" 2>&1) || attw_ok=0
  [ "$attw_ok" = 1 ] || attw_summary="FAILED ${attw_summary}"

  printf '   %-26s publint: %-20s attw: %s\n' "@effect-atm/$name" "$publint_summary" "$attw_summary"
  if [ "$publint_ok" = 0 ]; then
    sed 's/^/     | /' <<<"$publint_out"
    status=1
  fi
  if [ "$attw_ok" = 0 ] || [[ "$attw_summary" != ok* ]]; then
    sed 's/^/     | /' "$work/attw-$name.err"
    # shellcheck disable=SC2086
    "$bin/attw" "$tarball" --profile esm-only --format ascii --no-color ${modules:+--include-entrypoints $modules} |
      sed 's/^/     | /' || true
    status=1
  fi
done
exit "$status"
