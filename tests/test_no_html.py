"""Outside the web UI's own pages, no answer names an HTML media type.

``OPTIONS`` on any route is answered with 204, the route's methods in
``Allow`` and no body or Content-Type; routing errors Werkzeug raises itself
(unknown path, method not allowed) answer in the OCI error format.
"""

import pytest

# A value for each variable part of a route, so that every route can be reached.
SAMPLE_VALUES = {
    "name": "some/repo",
    "reference": "latest",
    "digest": "sha256:" + "0" * 64,
    "upload_id": "0123",
    "filename": "style.css",
}


def every_route(app):
    """Yield (path, methods) for each route of the application."""
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        values = {argument: SAMPLE_VALUES[argument] for argument in rule.arguments}
        yield adapter.build(rule.endpoint, values), rule.methods


def allowed(response):
    return {method.strip() for method in response.headers["Allow"].split(",")}


def assert_oci_error(response, status):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.json["errors"][0]["code"]


def test_every_route_answers_options_with_no_content_and_no_type(app, client):
    routes = list(every_route(app))
    assert len(routes) > 20

    for path, methods in routes:
        response = client.options(path)

        assert response.status_code == 204, path
        assert "Content-Type" not in response.headers, path
        assert response.data == b"", path
        assert methods <= allowed(response), path


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/no/such/page", "/v2/a/nothing/here", "/tokens"])
def test_unknown_paths_answer_an_oci_error(client, method, path):
    response = client.open(path, method=method)

    assert response.status_code == 404
    assert response.mimetype == "application/json"
    if method != "HEAD":
        assert_oci_error(response, 404)


def test_every_route_answers_an_unknown_method_with_an_oci_error(app, client):
    for path, methods in every_route(app):
        response = client.open(path, method="BREW")

        assert_oci_error(response, 405)
        assert response.json["errors"][0]["code"] == "UNSUPPORTED"
        assert methods <= allowed(response), path


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/v2/"),
        ("DELETE", "/token"),
        ("POST", "/metrics"),
        ("PUT", "/healthz"),
        ("GET", "/v2/a/blobs/uploads/"),
        ("PUT", "/ui/"),
    ],
)
def test_a_method_a_known_route_lacks_is_405_in_the_oci_format(client, method, path):
    response = client.open(path, method=method)

    assert_oci_error(response, 405)
    assert "Allow" in response.headers
