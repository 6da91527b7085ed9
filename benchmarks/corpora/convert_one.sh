#!/usr/bin/env bash
# Converts every markdown file of a corpus into one other format, the way a corpus arrives when
# its owners export it: DOCX (a Word document per page) or HTML (a standalone page per file).
# Used by benchmarks/corpora.py to make the DOCX and HTML test corpora from benchmarks/corpora/<name>/source/.
#
#   convert_one.sh FORMAT SRC_DIR OUT_DIR     FORMAT is docx or html
#
# Every SRC_DIR/**/*.md becomes OUT_DIR/<same relative path>.<FORMAT>.
#
# Choices, so that every file is treated alike:
# - YAML front matter (a first line `---` up to the next `---` or `...`) is stripped and the rest
#   is read as GitHub-flavoured markdown (-f gfm). Reading it as pandoc markdown instead would turn
#   straight quotes and `--` into typographic ones (its `smart` extension), changing the text.
# - The title is the front matter's `title:`, else the first `# ` heading, else the file name.
#   A front-matter title is not in the body, so the page shows it as its heading (HTML <h1>, DOCX
#   Title); a title taken from the body's `# ` heading only names the page, not shown twice in HTML.
# - DOCX goes through HTML (gfm -> html -> docx): pandoc's DOCX writer drops raw HTML blocks, so
#   HTML tables written inside markdown (level grids, say) would vanish; its HTML reader turns them
#   into real Word tables.
# - In DOCX an image becomes its alt text: pandoc would otherwise download every remote image to
#   embed it (the corpora link images on the web, and this machine need not reach them).
set -euo pipefail

usage() { echo "usage: $0 docx|html SRC_DIR OUT_DIR" >&2; exit 2; }
[[ $# -eq 3 ]] || usage
format=$1
src=${2%/}
out=${3%/}
[[ $format == docx || $format == html ]] || usage
[[ -d $src ]] || { echo "$0: no such directory: $src" >&2; exit 2; }
mkdir -p "$out"

body=$(mktemp)
filter=$(mktemp --suffix=.lua)
trap 'rm -f "$body" "$filter"' EXIT
# Lua filter for DOCX: replace each image by its description (alt text).
echo 'function Image(el) return el.caption end' > "$filter"

count=0
while IFS= read -r -d '' md; do
    rel=${md#"$src"/}
    dest="$out/${rel%.md}.$format"
    mkdir -p "$(dirname "$dest")"

    # Split off the front matter, if any, and take its title.
    fm_title=""
    if [[ $(head -n1 "$md") == "---" ]]; then
        # Body: everything after the closing line of the front matter.
        awk 'NR == 1 { next } !done && ($0 == "---" || $0 == "...") { done = 1; next } done' \
            "$md" > "$body"
        fm_title=$(awk 'NR == 1 { next } $0 == "---" || $0 == "..." { exit }
                        /^title:/ { sub(/^title:[ \t]*/, ""); print; exit }' "$md")
        # Drop surrounding quotes of a YAML scalar.
        fm_title=$(sed -E "s/^\"(.*)\"$/\1/; s/^'(.*)'$/\1/" <<< "$fm_title")
    else
        cp "$md" "$body"
    fi

    title_args=()
    if [[ -n $fm_title ]]; then
        title_args=(--metadata "title=$fm_title")
    else
        heading=$(grep -m1 '^# ' "$body" | sed 's/^# //' || true)
        name=$(basename "$md" .md)
        if [[ $format == html ]]; then
            # <title> only: the body already starts with this heading.
            title_args=(--metadata "pagetitle=${heading:-$name}")
        else
            title_args=(--metadata "title=${heading:-$name}")
        fi
    fi

    if [[ $format == html ]]; then
        pandoc -f gfm -t html -s "${title_args[@]}" "$body" -o "$dest"
    else
        pandoc -f gfm -t html --lua-filter "$filter" "$body" \
            | pandoc -f html -t docx "${title_args[@]}" -o "$dest"
    fi
    count=$((count + 1))
done < <(find "$src" -type f -name '*.md' -print0 | sort -z)

echo "converted $count files to $format in $out"
