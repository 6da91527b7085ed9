#!/usr/bin/env bash
# Converts a markdown corpus into PDF and DOCX versions with the converters users have:
# pandoc renders each file to HTML (tables ruled, as most exported documents are) and
# Chromium prints it (--print-to-pdf); pandoc writes the DOCX. Used by `make eval` to check that
# retrieval holds whatever format a corpus arrives in.
#   convert.sh SRC_DIR OUT_DIR   -> OUT_DIR/pdf/*.pdf and OUT_DIR/docx/*.docx
set -euo pipefail
src=$1
out=$2
mkdir -p "$out/pdf" "$out/docx" "$out/html"
css="$out/html/style.css"
printf 'body{font-family:serif;max-width:46em;margin:auto}table{border-collapse:collapse}th,td{border:1px solid #444;padding:3px;vertical-align:top}tr{break-inside:avoid}\n' > "$css"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
for md in "$src"/*.md; do
    name=$(basename "$md" .md)
    title=$(grep -m1 '^# ' "$md" | sed 's/^# //' || true)
    pandoc -f gfm "$md" -s --self-contained --css "$css" --metadata title="${title:-$name}" \
        --variable title="" -o "$out/html/$name.html"
    pandoc -f gfm "$md" --metadata title="${title:-$name}" -o "$out/docx/$name.docx"
    chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
        --disable-component-update --disable-sync --user-data-dir="$profile" \
        --no-pdf-header-footer --print-to-pdf="$out/pdf/$name.pdf" "file://$out/html/$name.html" \
        2>/dev/null
done
