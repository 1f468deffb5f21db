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


# ---- found in review (2026-12-05): the dev endpoints and DNS rebinding ----------------------
def _post(path: str, headers: dict[str, str]) -> int:
    import io
    import time

    class AppCheck:
        def mint(self):
            return "MINTED", time.time() + 3600

    class App:
        app_check = AppCheck()

    bound = type("BoundHandler", (web.Handler,), {"app": App()})
    handler = bound.__new__(bound)
    lines = [f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "Content-Length: 0", "", ""]
    handler.rfile = io.BytesIO("\r\n".join(lines).encode())
    handler.wfile = io.BytesIO()
    handler.client_address, handler.server, handler.request = ("127.0.0.1", 50000), None, None
    handler.handle_one_request()
    return int(handler.wfile.getvalue().decode().split(" ", 2)[1])


def test_another_sites_page_under_its_own_name_gets_no_app_check_token():
    """Another site's name re-pointed at this machine (DNS rebinding) sends an Origin that
    agrees with its Host: it passed the same-origin check and got App Check tokens minted
    with the stack's debug secret."""
    rebound = {"Host": "rebind.evil.example:9200", "Origin": "http://rebind.evil.example:9200"}
    assert _post("/dev/app-check-token", rebound) == 403
    assert _post("/dev/app-check-token", {"Host": "127.0.0.1:9200", "Origin": "http://evil.example"}) == 403
    for host in ("127.0.0.1:9200", "localhost:9200", "192.168.1.20:9200", "[::1]:9200"):
        assert _post("/dev/app-check-token", {"Host": host, "Origin": f"http://{host}"}) == 200, host
