#!/usr/bin/env bash
# Regenerates the parser fixtures in this folder with the real converters users have:
# pandoc (HTML, DOCX), Chromium's --print-to-pdf (PDF) and qpdf (an encrypted PDF).
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
