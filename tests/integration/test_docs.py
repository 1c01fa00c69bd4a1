"""GET /docs: the OpenAPI document in Swagger UI, without an API key, and every file the
page loads served by the API itself (no other host)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from tests.integration.conftest import Stack


class _References(HTMLParser):
    """The src and href of a page's scripts, style sheets and icons."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for attr in ("src", "href"):
            if tag in ("script", "link") and values.get(attr):
                self.found.append((tag, str(values[attr])))


async def test_docs_page_loads_its_files_from_the_api_without_a_key(stack: Stack) -> None:
    page = await stack.http.get("/docs")  # no Authorization header
    assert page.status == 200
    assert page.content_type == "text/html"
    html = await page.text()
    parser = _References()
    parser.feed(html)
    kinds = {tag for tag, _ in parser.found}
    assert kinds == {"script", "link"}, parser.found
    assert len([tag for tag, _ in parser.found if tag == "script"]) >= 2

    base = str(page.url)
    answers: dict[str, bytes] = {}
    for _, reference in parser.found:
        url = urlsplit(urljoin(base, reference))
        # on this API: no other host, no scheme of its own
        assert url.netloc == urlsplit(base).netloc, f"{reference} is not served by the API"
        assert url.path.startswith("/docs/"), reference
        resp = await stack.http.get(url.path)
        assert resp.status == 200, (reference, resp.status)
        body = await resp.read()
        assert body, reference
        if url.path.endswith(".js"):
            assert resp.content_type == "text/javascript"
        elif url.path.endswith(".css"):
            assert resp.content_type == "text/css"
        answers[url.path] = body
    assert b"SwaggerUIBundle" in answers["/docs/swagger-ui-bundle.js"]
    assert ".swagger-ui" in answers["/docs/swagger-ui.css"].decode()
    # the page's own script opens the document the API serves, beside /docs
    init = answers["/docs/oms-docs.js"].decode()
    assert '"openapi.json"' in init
    document = await stack.http.get(urlsplit(urljoin(base, "openapi.json")).path)
    assert document.status == 200
    assert "/v1/orders" in (await document.json())["paths"]


async def test_docs_answers_404_for_other_files(stack: Stack) -> None:
    """Only the page's files are public: another path under /docs is a 404 with a key and,
    like any path that is not public, a 401 without one."""
    for path in ("/docs/swagger-ui.js.map", "/docs/index.html", "/docs/..%2Fapi%2Fdocs.py"):
        status, body = await stack.call("GET", path, key="admin")
        assert status == 404, path
        assert body["error"]["code"] == "not_found"
        resp = await stack.http.get(path)
        assert resp.status == 401, path


async def test_docs_routes_are_in_the_document_as_public(stack: Stack) -> None:
    doc = await (await stack.http.get("/openapi.json")).json()
    page = doc["paths"]["/docs"]["get"]
    assert "security" not in page
    assert "text/html" in page["responses"]["200"]["content"]
    asset = doc["paths"]["/docs/{asset}"]["get"]
    assert "security" not in asset
    (parameter,) = asset["parameters"]
    assert "swagger-ui-bundle.js" in parameter["schema"]["enum"]
    assert {"text/css", "text/javascript"} <= set(asset["responses"]["200"]["content"])
