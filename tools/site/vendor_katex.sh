#!/usr/bin/env bash
# Refresh the vendored KaTeX (math in the static site, rendered with no network) from npm:
#   bash tools/site/vendor_katex.sh [version]
# It keeps only what a page needs: the script, its auto-render extension, the stylesheet, the woff2 fonts
# (every browser the site supports reads woff2, so the woff and ttf fallbacks are never fetched) and the licence.
set -euo pipefail
version="${1:-0.19.1}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "katex@$version" >/dev/null && tar xzf katex-*.tgz)
dest="$here/assets/katex"
rm -rf "$dest" && mkdir -p "$dest/fonts"
cp "$work/package/dist/katex.min.js" "$work/package/dist/katex.min.css" \
   "$work/package/dist/contrib/auto-render.min.js" "$work/package/LICENSE" "$dest/"
cp "$work/package/dist/fonts/"*.woff2 "$dest/fonts/"
echo "KaTeX $version vendored into $dest"
