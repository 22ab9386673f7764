#!/usr/bin/env bash
# Re-vendor the front-end assets from npm into static/vendor (run by hand when upgrading;
# the result is committed, so building and running the portal never needs npm or a network).
set -euo pipefail
cd "$(dirname "$0")/.."

npm install --no-audit --no-fund --ignore-scripts
mkdir -p static/vendor
cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
cp node_modules/htmx.org/LICENSE static/vendor/LICENSE-htmx.txt
cp node_modules/lucide-static/LICENSE static/vendor/LICENSE-lucide.txt

# One SVG sprite of the icons the pages use: <svg><use href="/static/vendor/icons.svg#name"/></svg>.
icons=(layout-dashboard clipboard-check network calendar-days bell file-text paperclip upload check x
       triangle-alert clock log-out settings users building-2 chevron-right chevron-left plus download search
       history languages printer menu circle-check circle-dashed circle-x ban hourglass send undo-2 pencil
       trash-2 eye list-tree scroll-text shield-check file-spreadsheet key-round)
{
    echo '<svg xmlns="http://www.w3.org/2000/svg"><!-- lucide-static (ISC), see LICENSE-lucide.txt -->'
    for name in "${icons[@]}"; do
        body=$(sed -e '/<!--/d' -e '/<svg/,/>/d' -e '/<\/svg>/d' "node_modules/lucide-static/icons/$name.svg" | tr -s ' \n' ' ')
        echo "<symbol id=\"$name\" viewBox=\"0 0 24 24\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"2\" stroke-linecap=\"round\" stroke-linejoin=\"round\">$body</symbol>"
    done
    echo '</svg>'
} > static/vendor/icons.svg
echo "vendored: htmx $(node -p "require('htmx.org/package.json').version"), $(( ${#icons[@]} )) lucide icons"
