"""The dev server builds the web app again only when a source changed (a page load checks
the sources' times and sizes, not their contents). The build itself is replaced here."""

from __future__ import annotations

import os

from devstack import web


def test_a_page_load_rebuilds_only_after_a_source_changed(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.js").write_text("console.log(1);\n")
    for name in ("index.html", "styles.css", "build.mjs", "package-lock.json"):
        (tmp_path / name).write_text(name)
    (tmp_path / "node_modules" / "esbuild").mkdir(parents=True)
    builds = []

    def fake_build(argv, cwd, **_kw):
        builds.append(argv)
        (cwd / "dist").mkdir(exist_ok=True)
        (cwd / "dist" / "app.js").write_text("built")
        return type("Done", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(web.subprocess, "run", fake_build)
    monkeypatch.setattr(web.shutil, "which", lambda _name: "node")
    monkeypatch.setattr(web, "source_digest", _counting(web.source_digest, reads := []))
    web.ensure_built(tmp_path)
    web.ensure_built(tmp_path)
    web.ensure_built(tmp_path)
    assert len(builds) == 1 and len(reads) == 1  # later loads read no source
    main = tmp_path / "src" / "main.js"
    main.write_text("console.log(2);\n")
    os.utime(main, ns=(main.stat().st_atime_ns, main.stat().st_mtime_ns + 10**9))
    web.ensure_built(tmp_path)
    assert len(builds) == 2


def _counting(fn, calls: list):
    def wrapped(*args):
        calls.append(args)
        return fn(*args)

    return wrapped
