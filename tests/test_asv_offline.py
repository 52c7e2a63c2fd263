"""bench.asv_offline: asv's published report loads every script and stylesheet from its own
folder, and the vendored files are those asv asks for."""

import base64
import hashlib
import pathlib
import re
import shutil

import pytest

from bench import asv_offline

asv = pytest.importorskip("asv")
ASV_WWW = pathlib.Path(asv.__file__).parent / "www"
# Every resource a page loads: a script's src, a link's href (not an <a href>, a link to follow).
LOADS = re.compile(r'<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)"', re.IGNORECASE)


def integrity(data: bytes, algorithm: str) -> str:
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


@pytest.fixture
def published(tmp_path) -> pathlib.Path:
    """A report as asv publish writes it (its template folder, the feed; the data does not matter here)."""
    html_dir = tmp_path / "html"
    shutil.copytree(ASV_WWW, html_dir)
    (html_dir / "regressions.xml").write_text("<feed/>")
    return html_dir


def test_every_remote_load_of_the_installed_asv_is_vendored():
    remote = [url for url in LOADS.findall((ASV_WWW / "index.html").read_text()) if url.startswith("http")]
    assert len(remote) == 10
    assert sorted(remote) == sorted(asv_offline.FILES)
    for name in asv_offline.FILES.values():
        assert (asv_offline.VENDOR / name).stat().st_size > 3000, name


@pytest.mark.parametrize("name", ["jquery-3.3.1.min.js", "jquery.flot.orderBars.js", "md5.min.js",
                                  "bootstrap.min.js", "bootstrap.min.css"])
def test_vendored_files_are_the_bytes_asv_expects(name):
    # asv's index.html gives each CDN file's hash (Subresource Integrity): these five are the same files.
    html = (ASV_WWW / "index.html").read_text()
    url = next(u for u, n in asv_offline.FILES.items() if n == name)
    expected = re.search(rf'"{re.escape(url)}"\s+integrity="([^"]+)"', html).group(1)
    assert integrity((asv_offline.VENDOR / name).read_bytes(), expected.split("-")[0]) == expected


@pytest.mark.parametrize("name, defines", [
    ("jquery.flot.js", "$.plot = function"), ("jquery.flot.js", "version 0.8.3."),
    ("jquery.flot.time.js", "name: 'time'"), ("jquery.flot.selection.js", "name: 'selection'"),
    ("jquery.flot.categories.js", "name: 'categories'"), ("stupidtable.min.js", "stupidsort"),
])
def test_the_other_vendored_files_define_what_asv_calls(name, defines):
    assert defines in (asv_offline.VENDOR / name).read_text()


def test_the_report_loads_everything_from_its_folder(published):
    used = asv_offline.make_offline(published)
    assert used == sorted(asv_offline.FILES.values())
    html = (published / "index.html").read_text()
    loads = LOADS.findall(html)
    assert len(loads) >= 20
    for path in loads:
        assert not path.startswith(("http:", "https:", "//")), path
        assert (published / path).is_file(), path
    assert "integrity=" not in html and "crossorigin=" not in html  # they were for the CDN's copies
    assert html.count('onerror="js_load_failure()"') == 9  # a missing file still shows asv's error page
    assert 'href="https://github.com/airspeed-velocity/asv/"' in html  # links stay links
    assert (published / "vendor" / "md5.min.js").read_bytes() == (asv_offline.VENDOR / "md5.min.js").read_bytes()


def test_running_it_again_changes_nothing(published):
    asv_offline.make_offline(published)
    first = (published / "index.html").read_text()
    (published / "vendor" / "jquery.flot.js").unlink()
    assert asv_offline.make_offline(published) == sorted(asv_offline.FILES.values())
    assert (published / "index.html").read_text() == first
    assert (published / "vendor" / "jquery.flot.js").is_file()  # copied again


def test_an_unknown_remote_script_is_refused(published):
    index = published / "index.html"
    new_script = '<script src="https://cdn.example.org/new.js"></script>'
    index.write_text(index.read_text().replace("</head>", new_script + "</head>"))
    with pytest.raises(asv_offline.OfflineError, match="lacks .*https://cdn.example.org/new.js"):
        asv_offline.make_offline(published)
    assert "https://code.jquery.com" in index.read_text()  # left as it was


def test_no_report_is_an_error(tmp_path, capsys):
    assert asv_offline.main(["--html-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"bench.asv_offline: error: no report in {tmp_path}: run asv publish first\n"


def test_the_command_reads_html_dir_from_the_configuration(published, tmp_path, capsys):
    config = tmp_path / "asv.conf.json"
    config.write_text('{\n  // a comment, as in ours\n'
                      '  "version": 1, "project": "p", "repo": ".", "html_dir": "html"\n}\n')
    assert asv_offline.main(["--config", str(config)]) == 0
    assert "loads its 10 scripts and stylesheets from vendor/" in capsys.readouterr().out
    assert (published / "vendor" / "bootstrap.min.css").is_file()
