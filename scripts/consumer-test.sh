#!/usr/bin/env bash
# Installs the packages the way a user does, from their packed tarballs and the npm registry, into projects outside
# the workspace, and checks that they work there:
#   1. core alone: install time and size, no native build;
#   2. store-sql for a PostgreSQL user: no native build, the SQLite layer says what to install;
#   3. a consumer of every package: a plain JavaScript program run by node, a type-check of a TypeScript consumer
#      (moduleResolution nodenext and bundler, strict, skipLibCheck false), publint and attw;
#   4. the same consumer on the lowest versions our peer ranges allow.
# `npm run test:consumer`; run by .ci/run. Needs the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

packages=(core oidc-login store-sql store-redis dev-identity testing)
# The projects hold ~600 MB in ~40,000 files: on a tmpfs when there is room (deleting them from this machine's disk
# takes half a minute), unless TMPDIR says where.
tmp=${TMPDIR:-/tmp}
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')" -gt 4000000 ]; then
  tmp=/dev/shm
fi
work=$(mktemp -d "$tmp/effect-atm-consumer.XXXXXX")
checks_pid=""
lowest_pid=""
lowest_install_pid=""
cleanup() {
  for pid in $checks_pid $lowest_pid $lowest_install_pid; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
script_t0=$(now)
step_name=""
step() {
  if [ -n "$step_name" ]; then printf -- '-- %s: %ss\n' "$step_name" "$(since "$step_t0")"; fi
  step_name=$1
  step_t0=$(now)
  printf '\n-- %s\n' "$1"
}
fail() {
  printf 'FAILED: %s\n' "$*" >&2
  exit 1
}

# the exact versions pinned in the workspace (root devDependencies)
pin() {
  local version
  version=$(node -p "require('./package.json').devDependencies['$1'] ?? ''")
  [ -n "$version" ] || fail "$1 is not pinned in the root package.json"
  echo "$1@$version"
}
# not used in the workspace, only by a consumer that type-checks @effect/sql-pg's declarations (skipLibCheck false)
types_pg=@types/pg@8.23.1

# A project of its own. @effect/sql-sqlite-node's better-sqlite3 is installed without its install script where it is
# installed at all: these projects never open SQLite, and the script compiles SQLite from source when it cannot
# download a prebuilt binary (as here, where only the npm registry is reachable), which takes minutes.
new_project() {
  mkdir -p "$1"
  printf '{ "name": "%s", "private": true, "type": "module", "allowScripts": { "better-sqlite3": false } }\n' \
    "$(basename "$1")" >"$1/package.json"
}

# npm install into a project, timed and measured
install() {
  local dir=$1 t0 status=0 count size
  shift
  t0=$(now)
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=warn "$@") >"$dir/npm-install.log" 2>&1 || status=$?
  grep -vE '^(npm warn install-scripts *)?$' "$dir/npm-install.log" | sed 's/^/   | /' || true
  [ "$status" = 0 ] || fail "npm install in $(basename "$dir") exited $status"
  t0=$(since "$t0")
  count=$(find "$dir/node_modules" -name package.json | grep -cE '/node_modules/(@[^/]+/)?[^/@.][^/]*/package\.json$')
  size=$(du -sk "$dir/node_modules" | cut -f1)
  printf '   installed in %ss: node_modules %s MB (du -sk: %s kB), %s packages\n' "$t0" "$((size / 1024))" "$size" "$count"
}

# No native code is compiled: no build/Release anywhere, and no package with a binding.gyp except those known to ship
# prebuilt binaries in optional per-platform packages (so that nothing is compiled, which build/ would show):
# msgpackr-extract (@effect/platform -> msgpackr), @parcel/watcher (@effect/platform-node -> platform-node-shared),
# and better-sqlite3 where its script is denied (see new_project).
no_native_build() {
  local dir=$1 builds gyps name unexpected=""
  builds=$(cd "$dir/node_modules" && find . -type d -path '*/build/Release' | sed 's#^\./##')
  [ -z "$builds" ] || fail "native code was compiled in $(basename "$dir"): $builds"
  gyps=$(cd "$dir/node_modules" && find . -name binding.gyp -printf '%h\n' | while read -r d; do
    if [ -f "$d/package.json" ]; then node -p "require('$dir/node_modules/$d/package.json').name"; fi
  done | sort -u | paste -sd ' ')
  for name in $gyps; do
    case "$name" in
      msgpackr-extract | @parcel/watcher | better-sqlite3) ;;
      *) unexpected="$unexpected $name" ;;
    esac
  done
  [ -z "$unexpected" ] || fail "packages with native code (binding.gyp) in $(basename "$dir"):$unexpected"
  echo "   no native build: no build/Release; binding.gyp in: ${gyps:-none}${gyps:+ (none compiled)}"
}

# node <program> in a project; its output is printed and kept in $node_out
run_node() {
  local dir=$1 program=$2 status=0
  node_out=$(cd "$dir" && node "$program" 2>&1) || status=$?
  sed 's/^/   | /' <<<"$node_out"
  [ "$status" = 0 ] || fail "node $program exited $status"
}

run_consumer() {
  run_node "$1" consumer.mjs
  grep -q "client=machine-basic" <<<"$node_out" || fail "consumer.mjs: the API's answer does not name machine-basic"
}

typecheck() {
  local dir=$1 config=$2 t0
  t0=$(now)
  (cd "$dir" && ./node_modules/.bin/tsc -p "$config" 2>&1 | sed 's/^/   | /'; exit "${PIPESTATUS[0]}") ||
    fail "tsc -p $config"
  printf '   tsc -p %-22s ok in %ss (%s)\n' "$config" "$(since "$t0")" "$(cd "$dir" && ./node_modules/.bin/tsc -v)"
}

consumer_files=(consumer.mjs consumer.ts tsconfig.nodenext.json tsconfig.bundler.json)
consumer_tools=("$(pin typescript)" "$(pin @types/node)" "$types_pg")

step "build"
npm run build --silent
# tsc -b is incremental and never deletes: a module removed from src would still be packed from dist
stale=$(for name in "${packages[@]}"; do
  (cd "packages/$name" && find dist -name '*.js' | sed 's#^dist/##; s#\.js$##' |
    while read -r module; do [ -f "src/$module.ts" ] || echo "packages/$name/dist/$module.js"; done)
done)
if [ -n "$stale" ]; then
  echo "   stale outputs ($(echo "$stale" | paste -sd ' ')): rebuilding from clean"
  npm run clean --silent
  npm run build --silent
fi
echo "   built ${packages[*]}"

step "pack"
mkdir -p "$work/tarballs"
(cd "$work/tarballs" && npm pack "${packages[@]/#/$repo/packages/}" --silent >/dev/null)
tarballs=("$work"/tarballs/*.tgz)
for file in "${tarballs[@]}"; do printf '   %-36s %s kB\n' "$(basename "$file")" "$(($(stat -c %s "$file") / 1024))"; done
tarball() { echo "$work/tarballs/effect-atm-$1-$(node -p "require('./packages/$1/package.json').version").tgz"; }

step "core alone: $(pin effect) $(pin @effect/platform)"
new_project "$work/core-alone"
install "$work/core-alone" "$(tarball core)" "$(pin effect)" "$(pin @effect/platform)"
no_native_build "$work/core-alone"

# meanwhile (after the measurement above), printed below: publint and attw, and the lowest versions to test
bash scripts/check-packages.sh "$work/tarballs" >"$work/check-packages.log" 2>&1 &
checks_pid=$!
node scripts/consumer/lowest-versions.mjs >"$work/lowest.txt" 2>"$work/lowest.log" &
lowest_pid=$!

step "core + store-sql for a PostgreSQL user (no @effect/sql-sqlite-node)"
pg_peers=()
for name in @effect/sql @effect/experimental @effect/sql-pg; do pg_peers+=("$(pin "$name")"); done
install "$work/core-alone" --prefer-offline "$(tarball store-sql)" "${pg_peers[@]}"
no_native_build "$work/core-alone"
cp scripts/consumer/sql-drivers.mjs "$work/core-alone/"
run_node "$work/core-alone" sql-drivers.mjs

step "consumer: the ${#tarballs[@]} tarballs, pinned peers, typescript"
consumer=$work/consumer
peers=()
for name in effect @effect/platform @effect/platform-node @effect/sql @effect/experimental @effect/sql-pg \
  @effect/sql-sqlite-node @effect/vitest vitest; do
  peers+=("$(pin "$name")")
done
echo "   peers: ${peers[*]}"
new_project "$consumer"
install "$consumer" --prefer-offline "${tarballs[@]}" "${peers[@]}" "${consumer_tools[@]}"
no_native_build "$consumer"
for file in "${consumer_files[@]}"; do cp "scripts/consumer/$file" "$consumer/"; done

# meanwhile, printed below: the same consumer on the lowest versions, in a project of its own
lowest_status=0
wait "$lowest_pid" || lowest_status=$?
lowest_pid=""
[ "$lowest_status" = 0 ] || { cat "$work/lowest.log"; fail "the lowest versions"; }
mapfile -t lowest <"$work/lowest.txt"
low=$work/consumer-lowest
new_project "$low"
for file in "${consumer_files[@]}"; do cp "scripts/consumer/$file" "$low/"; done
install "$low" --prefer-offline "${tarballs[@]}" "${lowest[@]}" "${consumer_tools[@]}" >"$work/lowest-install.log" 2>&1 &
lowest_install_pid=$!

step "consumer: node consumer.mjs"
run_consumer "$consumer"

step "consumer: type-check consumer.ts"
typecheck "$consumer" tsconfig.nodenext.json
typecheck "$consumer" tsconfig.bundler.json

step "publint and attw --profile esm-only (run meanwhile)"
checks_status=0
wait "$checks_pid" || checks_status=$?
checks_pid=""
cat "$work/check-packages.log"
[ "$checks_status" = 0 ] || fail "publint or attw"

step "lowest versions: the floors of our peer ranges and the Effect packages they need (run meanwhile)"
cat "$work/lowest.log"
install_status=0
wait "$lowest_install_pid" || install_status=$?
lowest_install_pid=""
cat "$work/lowest-install.log"
[ "$install_status" = 0 ] || fail "npm install of the lowest versions"

step "lowest versions: node consumer.mjs, type-check (nodenext)"
run_consumer "$low"
typecheck "$low" tsconfig.nodenext.json

step "done"
printf 'consumer test passed in %ss\n' "$(since "$script_t0")"
