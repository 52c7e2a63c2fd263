"""Make asv's published HTML report work offline: its CDN scripts and stylesheet from bench/asv_www/.

    asv publish && python -m bench.asv_offline     # then asv preview, or any local web server

asv 0.6.6's index.html loads jQuery, Flot, Stupid-Table, blueimp-md5 and Bootstrap from CDNs, and
without a network shows only "external (JavaScript) dependencies failed to load". This copies
the vendored files (bench/asv_www/README.md says where each comes from) into the report's
vendor/ folder and points index.html at them. Run it after every ``asv publish``, which writes
index.html anew. The report still reads its data with XMLHttpRequest, which browsers refuse for
file:// pages: serve the folder (``asv preview`` serves it on 127.0.0.1) rather than opening it.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shutil
import sys
from typing import Sequence

REPO = pathlib.Path(__file__).resolve().parents[1]
VENDOR = pathlib.Path(__file__).resolve().with_name("asv_www")

#: What asv 0.6.6's index.html loads from the web, and the file of bench/asv_www/ for each.
FILES = {
    "https://code.jquery.com/jquery-3.3.1.min.js": "jquery-3.3.1.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": "jquery.flot.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js": "jquery.flot.time.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js": "jquery.flot.selection.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js": "jquery.flot.categories.js",
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js": "jquery.flot.orderBars.js",
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js": "stupidtable.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": "md5.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js": "bootstrap.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css": "bootstrap.min.css",
}

# A <script> or <link> tag that loads from the web (an <a href> is a link to follow, not a load).
REMOTE_TAG = re.compile(r'<(script|link)\b[^>]*?\b(?:src|href)="(https?://[^"]*)"[^>]*>', re.IGNORECASE)


class OfflineError(Exception):
    """The report cannot be made to work offline (none published, or an asv that loads other files)."""


def localize(html: str) -> tuple[str, list[str]]:
    """The page with every known CDN script and stylesheet loaded from vendor/ (without the
    integrity and crossorigin attributes, which are for the CDN's copies), and the files used."""
    used: list[str] = []
    unknown: list[str] = []

    def local(match: re.Match) -> str:
        kind, url = match.group(1).lower(), match.group(2)
        if url not in FILES:
            unknown.append(url)
            return match.group(0)
        used.append(FILES[url])
        if kind == "script":
            return f'<script src="vendor/{FILES[url]}" onerror="js_load_failure()">'
        return f'<link rel="stylesheet" href="vendor/{FILES[url]}">'

    html = REMOTE_TAG.sub(local, html)
    if unknown:
        raise OfflineError("the report loads files bench/asv_www/ lacks (another asv version?): " + ", ".join(unknown))
    return html, used


def make_offline(html_dir: pathlib.Path) -> list[str]:
    """Copy the vendored files into html_dir/vendor/ and point html_dir/index.html at them;
    returns the files the page loads from there. Running it again changes nothing."""
    index = html_dir / "index.html"
    if not index.is_file():
        raise OfflineError(f"no report in {html_dir}: run asv publish first")
    html, used = localize(index.read_text(encoding="utf-8"))
    used = sorted(set(used) | set(re.findall(r'"vendor/([^"]+)"', html)))  # also those of an earlier run
    (html_dir / "vendor").mkdir(exist_ok=True)
    for name in used:
        shutil.copyfile(VENDOR / name, html_dir / "vendor" / name)
    index.write_text(html, encoding="utf-8")
    return used


def html_dir_of(config: pathlib.Path) -> pathlib.Path:
    """The html_dir of an asv.conf.json, relative to the file's folder."""
    from asv.config import Config

    return (config.resolve().parent / Config.load(str(config)).html_dir).resolve()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=pathlib.Path, default=REPO / "asv.conf.json", help="asv's configuration")
    parser.add_argument("--html-dir", type=pathlib.Path, help="the published report (default: the configuration's)")
    args = parser.parse_args(argv)
    html_dir = args.html_dir or html_dir_of(args.config)
    try:
        used = make_offline(html_dir)
    except OfflineError as error:
        print(f"bench.asv_offline: error: {error}", file=sys.stderr)
        return 1
    print(f"bench.asv_offline: {html_dir / 'index.html'} loads its {len(used)} scripts and stylesheets from vendor/; "
          "view it through a local server (asv preview), not as a file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
