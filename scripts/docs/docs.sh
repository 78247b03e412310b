#!/usr/bin/env bash
# API reference from JSDoc, with @effect/docgen, for every publishable package (the ones with a docgen.json), one
# after the other: packages/<name>/docs/modules/*.md. Fails (after trying them all) if an export lacks @since or an
# @example does not type-check. Then type-checks the code of the guides (docs/*.md, see guides.mjs).
# `npm run docs` runs all of them; `npm run docs -- core store-sql` some packages (and no guides).
set -euo pipefail
cd "$(dirname "$0")/../.."

# docgen type-checks the examples with tsc, then runs them all with `tsx`. Ours are type-checked only: they wire
# layers to real providers, Redis and PostgreSQL, and the conformance suites' examples need the vitest runner.
# The `tsx` first on this PATH is a no-op; docgen finds `tsc` in node_modules/.bin as usual.
export PATH="$PWD/scripts/docs/typecheck-only:$PWD/node_modules/.bin:$PATH"

if [ "$#" -gt 0 ]; then
  dirs=()
  for name in "$@"; do dirs+=("packages/$name"); done
else
  dirs=()
  for config in packages/*/docgen.json; do dirs+=("$(dirname "$config")"); done
fi

failed=()
for dir in "${dirs[@]}"; do
  printf '\n== docs: %s\n' "$dir"
  start=$SECONDS
  if (cd "$dir" && node ../../node_modules/@effect/docgen/bin.cjs); then
    echo "$dir: $((SECONDS - start)) s"
  else
    failed+=("$dir")
  fi
done

# the guides' code, when all packages are documented
if [ "$#" -eq 0 ]; then
  printf '\n== docs: docs/*.md\n'
  node scripts/docs/guides.mjs || failed+=("docs/*.md")
fi

if [ "${#failed[@]}" -gt 0 ]; then
  echo "docs failed: ${failed[*]}" >&2
  exit 1
fi
