#!/usr/bin/env bash
# Regenerates the parser fixtures in this folder with the real converters users have:
# pandoc (HTML, DOCX), Chromium's --print-to-pdf (PDF), qpdf (an encrypted PDF) and LibreOffice
# (a DOCX as Word processors other than pandoc write it).
# The committed files are what the tests read; run this only to change them.
set -euo pipefail
cd "$(dirname "$0")"
pandoc guide.md -s --self-contained --css style.css --metadata title="Data Engineer Career Guide" -o guide.html
pandoc guide.md -o guide.docx
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" \
    --no-pdf-header-footer --print-to-pdf="$PWD/guide.pdf" "file://$PWD/guide.html" 2>/dev/null
qpdf --encrypt secret secret 256 -- guide.pdf encrypted.pdf
head -c 2000 guide.pdf > truncated.pdf
head -c 3000 guide.docx > truncated.docx
printf '<html><body><nav>Only navigation</nav></body></html>' > empty.html
printf -- '---\ntitle: Nothing here\n---\n' > empty.md
# Every word a page shows: raw HTML in markdown (a <br>, a table whose <th> head rows, a cell of
# two paragraphs), a one-column table, a one-row table, a list that starts at 3, a list item of
# two paragraphs; converted as benchmarks/corpora/convert_one.sh converts a corpus.
pandoc -f gfm words.md -s --self-contained --css style.css --metadata title="Leave Policy" \
    --variable title="" -o words.html
pandoc -f gfm -t html words.md | pandoc -f html -t docx --metadata title="Leave Policy" -o words.docx
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" \
    --no-pdf-header-footer --print-to-pdf="$PWD/words.pdf" "file://$PWD/words.html" 2>/dev/null
# Passages that stand on their own: a lead-in before its list, a question before its answer, a
# one-line section beside a full one, a level grid with spanning cells and a cell of ten items.
pandoc -f gfm passages.md -s --self-contained --css style.css --metadata title="Engineering Handbook" \
    --variable title="" -o passages.html
pandoc -f gfm -t html passages.md | pandoc -f html -t docx --metadata title="Engineering Handbook" \
    -o passages.docx
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" \
    --no-pdf-header-footer --print-to-pdf="$PWD/passages.pdf" "file://$PWD/passages.html" 2>/dev/null
# What python-docx's paragraph.text misses, written by LibreOffice: a tracked insertion (and a
# deletion), a text box, a hyperlink, lettered and numbered lists, no core title.
soffice --headless --convert-to docx --outdir . expenses.fodt
